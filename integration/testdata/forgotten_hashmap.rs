// A forgotten HashMap<u32, String>: its table leaks directly, its 40
// strings indirectly. While it grew, the map freed smaller tables that still
// point at the strings: freed memory is no root (integration/rust_test.go).

use std::collections::HashMap;

#[inline(never)]
fn forget_map() {
    let mut m: HashMap<u32, String> = HashMap::new();
    for i in 0..40u32 {
        m.insert(i, format!("{:048}", i));
    }
    std::mem::forget(m);
}

fn main() {
    forget_map();
}
