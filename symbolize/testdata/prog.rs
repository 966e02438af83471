// Rust test program for package symbolize. Same protocol as prog.c; the
// addresses come from `lea reg, [rip]`, which yields the address of the
// next instruction, so the test subtracts 1 as for a return address. The
// asm! is written out at each marked line (not in a macro) so that its
// line is the marked one.
use std::io::Read;

mod zoo {
    pub struct Keeper {
        pub n: usize,
    }

    impl Keeper {
        #[inline(never)]
        pub fn store(&self) -> usize {
            let pc: usize;
            unsafe { std::arch::asm!("lea {}, [rip]", out(reg) pc, options(nomem, nostack)) } // LINE:rust_store
            std::hint::black_box(pc) + std::hint::black_box(self.n)
        }
    }

    #[inline(always)]
    fn visit() -> usize {
        let pc: usize;
        unsafe { std::arch::asm!("lea {}, [rip]", out(reg) pc, options(nomem, nostack)) } // LINE:rust_visit
        pc
    }

    #[inline(never)]
    pub fn tour() -> usize {
        std::hint::black_box(visit()) // LINE:rust_tour
    }
}

fn main() {
    let k = zoo::Keeper { n: 0 };
    println!("store {:#x}", std::hint::black_box(&k).store());
    println!("tour {:#x}", zoo::tour());
    println!("ready");
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
}
