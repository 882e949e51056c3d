use vmlab_mm::errno::{Errno, FaultReason};
use vmlab_mm::mm::uapi::*;
use vmlab_mm::system::{ByteSize, Machine, MachineConfig};

fn machine() -> Machine {
    Machine::new(&MachineConfig {
        ram: ByteSize(64 << 20),
        ..Default::default()
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
    let data: Vec<u8> = (0..5 * 4096 + 0).map(|i| (i * 7 % 251) as u8).collect();
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
