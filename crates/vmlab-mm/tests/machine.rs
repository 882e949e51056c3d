use vmlab_mm::errno::{Errno, FaultReason};
mod common;

use vmlab_mm::mm::uapi::*;
use vmlab_mm::mm::Access;
use vmlab_mm::pgtable::Pte;
use vmlab_mm::sync::Ordering;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

fn machine() -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        ..common::test_config()
    })
    .unwrap()
}

#[test]
fn write_read_back_and_exit_frees_everything() {
    let m = machine();
    let base_used = m.phys().frames_used();
    let pid = m.spawn().unwrap();
    let a = m
        .mmap(pid, 0, 5 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    let data: Vec<u8> = (0..5 * 4096).map(|i| (i * 7 % 251) as u8).collect();
    m.write(pid, a + 3, &data[..5 * 4096 - 3]).unwrap().unwrap();
    let mut back = vec![0u8; 5 * 4096 - 3];
    m.read(pid, a + 3, &mut back).unwrap().unwrap();
    assert_eq!(back, &data[..5 * 4096 - 3]);
    m.check().unwrap();
    {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        cpu.store_u64(a + 8, 0xdead_beef).unwrap();
        assert_eq!(cpu.load_u64(a + 8).unwrap(), 0xdead_beef);
        m.mprotect(pid, a, 4096, PROT_READ).unwrap();
        assert_eq!(cpu.store_u64(a + 8, 1).unwrap_err().reason, FaultReason::Protection);
        assert_eq!(cpu.load_u64(a + 8).unwrap(), 0xdead_beef);
        m.munmap(pid, a, 4096).unwrap();
        assert_eq!(cpu.load_u64(a + 8).unwrap_err().reason, FaultReason::NotMapped);
    }
    m.check().unwrap();
    assert_eq!(m.maps(pid).unwrap().len(), 1);
    m.exit(pid).unwrap();
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), base_used);
    assert_eq!(
        m.mmap(pid, 0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS),
        Err(Errno::ESRCH)
    );
}

/// A translation cached by another CPU is shot down by munmap and mprotect
/// before the call returns.
#[test]
fn shootdown_reaches_every_cpu_that_ran_the_process() {
    let m = Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        cpus: 2,
        ..common::test_config()
    })
    .unwrap();
    let pid = m.spawn().unwrap();
    let a = m
        .mmap(pid, 0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    let mut c0 = m.cpu(0).unwrap();
    let mut c1 = m.cpu(1).unwrap();
    assert_eq!(m.cpu(1).err(), Some(Errno::EBUSY));
    c0.switch_to(pid).unwrap();
    c1.switch_to(pid).unwrap();
    c0.store_u64(a, 7).unwrap();
    c0.store_u64(a + 4096, 9).unwrap();
    // CPU 1 caches both pages writable (dirty already), then hits in its TLB.
    c1.store_u64(a, 8).unwrap();
    c1.store_u64(a + 4096, 10).unwrap();
    let (hits_before, _) = c1.local_tlb_counts();
    c1.store_u64(a, 8).unwrap();
    assert_eq!(c1.local_tlb_counts().0, hits_before + 1, "second store is a TLB hit");
    let shootdowns = m.stats().shootdowns;
    m.mprotect(pid, a, 4096, PROT_READ).unwrap();
    assert_eq!(c1.store_u64(a, 1).unwrap_err().reason, FaultReason::Protection);
    assert_eq!(c1.load_u64(a).unwrap(), 8);
    m.munmap(pid, a + 4096, 4096).unwrap();
    assert_eq!(c1.load_u64(a + 4096).unwrap_err().reason, FaultReason::NotMapped);
    assert_eq!(c0.load_u64(a + 4096).unwrap_err().reason, FaultReason::NotMapped);
    let s = m.stats();
    assert_eq!(s.shootdowns, shootdowns + 2);
    assert!(s.shootdown_cpus >= 4, "both CPUs reached twice: {}", s.shootdown_cpus);
    drop((c0, c1));
    m.check().unwrap();
}

/// Reads of untouched anonymous memory map the shared zero page; the first
/// store replaces it with a private zeroed frame.
#[test]
fn read_maps_zero_page_then_write_gets_private_frame() {
    let m = machine();
    let pid = m.spawn().unwrap();
    let a = m
        .mmap(pid, 0, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    let used = m.phys().frames_used();
    let mut buf = vec![1u8; 3 * 4096];
    m.read(pid, a, &mut buf).unwrap().unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    let s = m.stats();
    assert_eq!(s.zero_page_maps, 3);
    assert_eq!(s.rss_pages, 0);
    // Only page-table pages were allocated by the reads (two frames each
    // under rmap = pte_chain: the second holds the chain links).
    let per_table = if m.phys().pte_link_kind() == vmlab_mm::phys::PteLinkKind::Chain {
        2
    } else {
        1
    };
    assert_eq!(
        m.phys().frames_used() - used,
        per_table * (s.page_table_pages as usize - 1)
    );
    m.write(pid, a + 4096 + 5, &[42]).unwrap().unwrap();
    let mut one = [0u8; 2];
    m.read(pid, a + 4096 + 4, &mut one).unwrap().unwrap();
    assert_eq!(one, [0, 42]);
    m.read(pid, a, &mut one).unwrap().unwrap();
    assert_eq!(one, [0, 0]);
    assert_eq!(m.stats().rss_pages, 1);
    m.check().unwrap();
    m.exit(pid).unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

/// munmap frees the page-table pages it leaves empty.
#[test]
fn munmap_prunes_empty_page_tables() {
    let m = machine();
    let pid = m.spawn().unwrap();
    let base = m.stats().page_table_pages;
    // Two pages 1 GiB apart need separate PDPT entries: PD + PT each.
    let a = m
        .mmap(
            pid,
            0x7000_0000_0000,
            4096,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        )
        .unwrap();
    let b = m
        .mmap(
            pid,
            a + (1 << 30),
            4096,
            PROT_READ | PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        )
        .unwrap();
    m.write(pid, a, &[1]).unwrap().unwrap();
    m.write(pid, b, &[2]).unwrap().unwrap();
    assert_eq!(m.stats().page_table_pages, base + 1 + 2 + 2, "PDPT shared, PD+PT each");
    m.munmap(pid, b, 4096).unwrap();
    assert_eq!(m.stats().page_table_pages, base + 1 + 2);
    m.check().unwrap();
    m.munmap(pid, a, 4096).unwrap();
    assert_eq!(m.stats().page_table_pages, base);
    m.check().unwrap();
}

/// Accesses with no process, above the user address space, or after exit
/// fault; none panics.
#[test]
fn bad_accesses_fault_without_panicking() {
    let m = machine();
    let mut c = m.cpu(0).unwrap();
    assert_eq!(c.load_u64(0x1000).unwrap_err().reason, FaultReason::BadAddress);
    let pid = m.spawn().unwrap();
    c.switch_to(pid).unwrap();
    assert_eq!(c.load_u64(u64::MAX - 7).unwrap_err().reason, FaultReason::BadAddress);
    assert_eq!(
        c.store_u64(0xffff_8000_0000_0000, 1).unwrap_err().reason,
        FaultReason::BadAddress
    );
    assert_eq!(c.load_u64(0x1000).unwrap_err().reason, FaultReason::NotMapped);
    let mut buf = [0u8; 16];
    assert!(c.read(u64::MAX - 3, &mut buf).is_err());
    let a = m
        .mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    c.store_u64(a, 5).unwrap();
    m.exit(pid).unwrap();
    assert_eq!(c.load_u64(a).unwrap_err().reason, FaultReason::BadAddress);
    assert_eq!(c.switch_to(pid), Err(Errno::ESRCH));
    drop(c);
    m.check().unwrap();
    assert_eq!(m.phys().frames_used(), m.reserved_frames());
}

// `checker_reports_corruption` (a corrupted mapcount, refcount or rss is
// reported) is a unit test of `system::check` now: a frame's counts are
// crate-private, so no code here can corrupt them.

fn pkeys_machine(pkeys: bool) -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        pkeys,
        ..common::test_config()
    })
    .unwrap()
}

/// With protection keys, execute-only memory refuses loads and stores with
/// `ProtectionKey` (SEGV_PKUERR) even after an instruction fetch made its
/// PTE present: the key is checked on every data access, so the TLB never
/// serves one. mprotect to anything but exactly PROT_EXEC lifts it.
#[test]
fn execute_only_memory_with_protection_keys() {
    for shared in [false, true] {
        let m = pkeys_machine(true);
        let pid = m.spawn().unwrap();
        let kind = if shared { MAP_SHARED } else { MAP_PRIVATE };
        let a = m
            .mmap(pid, 0, 2 * 4096, PROT_READ | PROT_WRITE, kind | MAP_ANONYMOUS)
            .unwrap();
        m.write(pid, a, &[7u8; 8]).unwrap().unwrap();
        m.mprotect(pid, a, 2 * 4096, PROT_EXEC).unwrap();
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        // An instruction fetch works and fills the page table.
        cpu.translate(a, Access::Exec).unwrap();
        cpu.translate(a + 4096, Access::Exec).unwrap();
        for _ in 0..2 {
            assert_eq!(
                cpu.load_u64(a).unwrap_err().reason,
                FaultReason::ProtectionKey,
                "shared={shared}"
            );
            assert_eq!(cpu.store_u64(a, 1).unwrap_err().reason, FaultReason::ProtectionKey);
            assert_eq!(cpu.load_u64(a + 4096).unwrap_err().reason, FaultReason::ProtectionKey);
        }
        m.check().unwrap();
        m.mprotect(pid, a, 4096, PROT_READ | PROT_EXEC).unwrap();
        assert_eq!(cpu.load_u64(a).unwrap(), 0x0707_0707_0707_0707);
        assert_eq!(cpu.load_u64(a).unwrap(), 0x0707_0707_0707_0707, "now a TLB hit");
        assert_eq!(cpu.load_u64(a + 4096).unwrap_err().reason, FaultReason::ProtectionKey);
        // Back to execute-only: the cached readable translation is shot down.
        m.mprotect(pid, a, 4096, PROT_EXEC).unwrap();
        assert_eq!(cpu.load_u64(a).unwrap_err().reason, FaultReason::ProtectionKey);
        let err = cpu.load_u64(a).unwrap_err();
        assert_eq!(err.si_code(), Some(SEGV_PKUERR));
        m.check().unwrap();
        drop(cpu);
        m.exit(pid).unwrap();
        m.check().unwrap();
    }
    // Without protection keys the same page is readable (x86: exec implies read).
    let m = pkeys_machine(false);
    let pid = m.spawn().unwrap();
    let a = m.mmap(pid, 0, 4096, PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    cpu.translate(a, Access::Exec).unwrap();
    assert_eq!(cpu.load_u64(a).unwrap(), 0);
    assert_eq!(cpu.store_u64(a, 1).unwrap_err().si_code(), Some(SEGV_ACCERR));
}

/// The TLB caches whether a page may be executed: a second fetch from a
/// read-exec page is a hit, a load's cached translation of a page without
/// PROT_EXEC never serves a fetch, and mprotect taking PROT_EXEC away
/// shoots the executable translation down.
#[test]
fn instruction_fetches_hit_the_tlb_only_where_exec_is_allowed() {
    let m = machine();
    let pid = m.spawn().unwrap();
    let a = m
        .mmap(pid, 0, 2 * 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    m.mprotect(pid, a + 4096, 4096, PROT_READ).unwrap();
    let mut cpu = m.cpu(0).unwrap();
    cpu.switch_to(pid).unwrap();
    cpu.translate(a, Access::Exec).unwrap();
    let (hits, misses) = cpu.local_tlb_counts();
    cpu.translate(a, Access::Exec).unwrap();
    assert_eq!(cpu.local_tlb_counts(), (hits + 1, misses), "the second fetch hits");
    // Readable, not executable: the load fills the TLB, the fetch faults.
    assert_eq!(cpu.load_u64(a + 4096).unwrap(), 0);
    assert_eq!(cpu.load_u64(a + 4096).unwrap(), 0, "now a TLB hit");
    for _ in 0..2 {
        let e = cpu.translate(a + 4096, Access::Exec).unwrap_err();
        assert_eq!(e.reason, FaultReason::Protection);
    }
    m.mprotect(pid, a, 4096, PROT_READ).unwrap();
    assert_eq!(
        cpu.translate(a, Access::Exec).unwrap_err().reason,
        FaultReason::Protection
    );
    assert_eq!(cpu.load_u64(a).unwrap(), 0);
    drop(cpu);
    m.check().unwrap();
}

/// The checker reports a broken state instead of panicking: here an address
/// space reaches another one's leaf table through a corrupted PD entry
/// flagged as a fork-shared table above TASK_SIZE, so it "does not own" more
/// frames than it maps (an underflow on `rss - not_owned` before).
#[test]
fn checker_reports_rss_underflow_instead_of_panicking() {
    let m = machine();
    let victim = m.spawn().unwrap();
    let other = m.spawn().unwrap();
    let a = m
        .mmap(other, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    m.write(other, a, &[1]).unwrap().unwrap();
    m.check().unwrap();
    let phys = m.phys();
    let other_mm = m.process(other).unwrap();
    let table = Pte(other_mm
        .mm
        .page_table()
        .pd_entry(phys, a)
        .unwrap()
        .load(Ordering::Acquire))
    .pfn();
    let victim_p = m.process(victim).unwrap();
    let hi = victim_p.mm.page_table().pd_entry_alloc(phys, 1 << 47).unwrap();
    hi.store(
        Pte::new(table, (Pte::TABLE_FLAGS & !Pte::WRITE) | Pte::TABLE_COW).0,
        Ordering::Release,
    );
    let err = m.check().unwrap_err().to_string();
    assert!(err.contains("does not own"), "{err}");
    // Repair, so that exit tears down a sound machine.
    hi.store(0, Ordering::Release);
    m.check().unwrap();
    m.exit(victim).unwrap();
    m.exit(other).unwrap();
    m.check().unwrap();
}

/// Every Linux constant vmlab understands is in `mm::uapi`.
#[test]
fn linux_constants_are_public_in_uapi() {
    assert_eq!(
        (MAP_DROPPABLE, MAP_32BIT, MAP_ABOVE4G, MAP_HUGE_2MB, MAP_HUGE_1GB),
        (0x08, 0x40, 0x80, 21 << 26, 30 << 26)
    );
    assert_eq!((MADV_GUARD_INSTALL, MADV_GUARD_REMOVE), (102, 103));
    assert_eq!(STACK_GUARD_GAP, 256 * PAGE_SIZE);
    assert_eq!((SEGV_MAPERR, SEGV_ACCERR, SEGV_PKUERR, BUS_ADRERR), (1, 2, 4, 2));
    assert_eq!((TASK_SIZE, MMAP_MIN_ADDR), ((1 << 47) - 4096, 65536));
}

/// A host that gives no memory for RAM: the build fails with an error that
/// says what it could not get, never an abort.
struct NoRamHost;

impl vmlab_mm::sync::Relax for NoRamHost {
    fn relax(&self) {}
}

impl vmlab_mm::system::Host for NoRamHost {
    fn remote_barrier(&self) -> bool {
        false
    }
    fn remote_barrier_is_real(&self) -> bool {
        false
    }
    fn ram_backing(&self) -> &dyn vmlab_mm::phys::RamBacking {
        &RefuseAll
    }
}

struct RefuseAll;

impl vmlab_mm::phys::RamBacking for RefuseAll {
    fn zeroed_words(&self, _words: usize) -> Option<vmlab_mm::phys::ZeroedWords> {
        None
    }
}

#[test]
fn a_host_that_refuses_ram_gives_an_error_not_an_abort() {
    let cfg = MachineConfig {
        ram: ByteSize(64 << 20),
        ..common::test_config()
    };
    let e = Machine::with_host(&cfg, Box::new(NoRamHost)).err().expect("refused");
    assert_eq!(
        e,
        vmlab_mm::system::MachineError::HostMemory {
            what: "simulated RAM",
            bytes: 64 << 20
        }
    );
    assert_eq!(
        e.to_string(),
        "ram: the host refused 67108864 bytes of memory for simulated RAM"
    );
}

#[test]
fn a_freed_frame_descriptor_is_all_zero_again() {
    // Descriptors start as zeroed host memory, so a free frame's descriptor
    // must be all zero; `reset` (on free) restores exactly that.
    use vmlab_mm::phys::Owner;
    let m = Machine::new(&MachineConfig {
        pcp_batch: 0,
        ..common::test_config()
    })
    .unwrap();
    let phys = m.phys();
    let pid = m.spawn().unwrap();
    let a = m
        .mmap(pid, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
        .unwrap();
    m.write(pid, a, &[1]).unwrap().unwrap();
    let pfn = {
        let mut cpu = m.cpu(0).unwrap();
        cpu.switch_to(pid).unwrap();
        cpu.translate(a, Access::Read).unwrap()
    };
    let d = phys.desc(pfn).unwrap();
    assert!(matches!(d.owner(), Owner::Anon { anon, index } if anon != 0 && index == a >> 12));
    d.lru_next.store(3, std::sync::atomic::Ordering::Relaxed);
    m.munmap(pid, a, 4096).unwrap();
    let fields = |d: &vmlab_mm::phys::FrameDesc| {
        use std::sync::atomic::Ordering::Relaxed;
        (
            d.flags.load(Relaxed),
            d.refcount(),
            d.mapcount(),
            d.owner(),
            d.lru_prev.load(Relaxed),
            d.lru_next.load(Relaxed),
        )
    };
    assert_eq!(fields(d), (0, 0, 0, Owner::None, 0, 0));
    // A frame never allocated reads as zero too.
    assert_eq!(
        fields(phys.desc(vmlab_mm::addr::Pfn(phys.total_frames() - 1)).unwrap()),
        (0, 0, 0, Owner::None, 0, 0)
    );
}
