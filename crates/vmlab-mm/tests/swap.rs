//! The swap area of a machine (config `swap_size`): its slots, and what the
//! overcommit heuristic counts. Swap-out and swap-in arrive with reclaim.

mod common;
use vmlab_mm::errno::Errno;
use vmlab_mm::mm::uapi::*;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

const MIB: u64 = 1 << 20;

fn machine(swap: u64) -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(64 * MIB),
        swap_size: ByteSize(swap),
        ..common::test_config()
    })
    .unwrap()
}

#[test]
fn the_overcommit_heuristic_counts_swap_as_linux_does() {
    // Linux `__vm_enough_memory` (guess mode): a private writable mapping
    // may not exceed RAM + swap.
    let rw = PROT_READ | PROT_WRITE;
    let flags = MAP_PRIVATE | MAP_ANONYMOUS;
    let m = machine(0);
    let p = m.spawn().unwrap();
    assert_eq!(
        m.mmap(p, 0, 96 * MIB, rw, flags),
        Err(Errno::ENOMEM),
        "more than RAM, no swap"
    );
    let m = machine(64 * MIB);
    let p = m.spawn().unwrap();
    assert!(m.mmap(p, 0, 96 * MIB, rw, flags).is_ok(), "RAM + swap holds it");
    assert_eq!(
        m.mmap(p, 0, 160 * MIB, rw, flags),
        Err(Errno::ENOMEM),
        "more than RAM + swap"
    );
    let s = m.stats();
    assert_eq!(
        (s.swap_total, s.swap_used),
        (64 * MIB / 4096 - 1, 0),
        "one slot is the header"
    );
    let area = m.swap().unwrap();
    assert_eq!(area.total(), s.swap_total);
    assert!(machine(0).swap().is_none());
    m.check().unwrap();
}

#[test]
fn bad_swap_sizes_are_config_errors_naming_the_key() {
    for (bytes, want) in [(4097, "not a multiple"), (4096, "too small")] {
        let e = Machine::new(&MachineConfig {
            swap_size: ByteSize(bytes),
            ..MachineConfig::default()
        })
        .err()
        .expect("refused")
        .to_string();
        assert!(e.starts_with("swap_size:") && e.contains(want), "{bytes}: {e}");
    }
    let mut c = MachineConfig::default();
    c.apply_pairs("swap_size=1MiB,swap_dir=/tmp").unwrap();
    assert_eq!((c.swap_size, c.swap_dir.as_str()), (ByteSize(MIB), "/tmp"));
    assert!(c.apply_pairs("swap_size=lots").unwrap_err().starts_with("swap_size:"));
}
