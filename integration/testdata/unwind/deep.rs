// Rust leaks for the unwinder tests, built -C opt-level=2 without frame
// pointers (rustc's default on x86-64): a Vec forgotten three calls deep
// and a leaked Box, through Rust's allocator shims into malloc.
use std::hint::black_box;

#[inline(never)]
fn level3(n: usize) -> usize {
    let v: Vec<u64> = (0..n as u64).collect();
    let len = v.len();
    std::mem::forget(black_box(v));
    len
}

#[inline(never)]
fn level2(n: usize) -> usize {
    level3(black_box(n + 7)) + 1
}

#[inline(never)]
fn level1(n: usize) -> usize {
    level2(black_box(n * 2)) + 1
}

#[inline(never)]
fn run_leaks(n: usize) -> usize {
    let b = Box::new([n as u8; 48]);
    let leaked: &'static mut [u8; 48] = Box::leak(black_box(b));
    leaked[0] as usize + level1(n)
}

fn main() {
    let n = black_box(std::env::args().count());
    black_box(run_leaks(n));
}
