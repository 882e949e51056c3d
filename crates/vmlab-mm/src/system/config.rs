//! The machine's config schema (serde). The host crate reads it from TOML
//! and applies `--set key=value` overrides; every key is documented in
//! docs/CONFIG.md. Later policies add their keys here.

use crate::mm::{FaultLock, ForkPolicy, ReclaimPolicy, RmapPolicy, VmaMapPolicy};
use crate::phys::FrameAllocatorPolicy;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes, written in config as an integer or a string with a
/// binary unit (`"256MiB"`, `"1GiB"`, `"4096"`, `"64KiB"`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `"256MiB"`-style sizes (units B, KiB, MiB, GiB, TiB; K/M/G/T accepted as binary too).
    pub fn parse(s: &str) -> Result<ByteSize, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid size {s:?}: expected a number with an optional unit such as 256MiB"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" | "k" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "T" | "TiB" => 1 << 40,
            u => {
                return Err(format!(
                    "invalid size {s:?}: unknown unit {u:?} (use B, KiB, MiB, GiB or TiB)"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size {s:?}: too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if b >= 1 << shift && b.is_multiple_of(1 << shift) {
                return write!(f, "{}{}", b >> shift, unit);
            }
        }
        write!(f, "{b}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes: an integer or a string such as \"256MiB\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Largest `pcp_batch`: a list holds up to 4 × batch frames, so this bounds
/// the frames parked per CPU at 16 MiB.
pub const MAX_PCP_BATCH: usize = 1024;

/// Everything that shapes a machine. `Default` is the built-in config
/// (with 1 CPU; the host crate sets `cpus` to the host's core count).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MachineConfig {
    /// Simulated RAM in bytes (4 KiB frames).
    pub ram: ByteSize,
    /// Simulated CPUs, each with its own TLB.
    pub cpus: usize,
    /// Slots in each CPU's TLB (direct mapped; rounded up to a power of two).
    pub tlb_entries: usize,
    /// VMA map policy.
    pub vma_map: VmaMapName,
    /// Frame allocator policy.
    pub frame_allocator: FrameAllocatorName,
    /// Linux `vm.max_map_count`.
    pub max_map_count: usize,
    /// How fork copies an address space.
    pub fork: ForkName,
    /// How concurrent faults in one address space exclude each other.
    pub fault_lock: FaultLockName,
    /// How a frame's mappings are found (`mm/rmap/`): the reverse map.
    pub rmap: RmapName,
    /// Which pages reclaim takes when memory runs short (`mm/reclaim/`).
    pub reclaim: ReclaimName,
    /// Watermarks: `linux` (computed from RAM as Linux does at boot) or
    /// `none` (all zero: kswapd wakes only when an allocation fails, so
    /// every frame is usable; reclaim is then synchronous).
    pub watermarks: WatermarksName,
    /// Frames each CPU's list of free single frames takes from or gives back
    /// to the zone at a time (`frame/pcp.rs`); 0 disables the lists.
    pub pcp_batch: usize,
    /// The CPU has protection keys and the kernel uses them (x86 `pku` and
    /// `ospke` in /proc/cpuinfo): Linux then makes exactly-`PROT_EXEC`
    /// memory execute-only, and a load or store there is SIGSEGV with
    /// `SEGV_PKUERR`.
    pub pkeys: bool,
    /// Swap space in bytes (a multiple of 4 KiB; 0: no swap). The host
    /// creates a swap file of this size for the run (`swap_dir`).
    pub swap_size: ByteSize,
    /// Directory the swap file is created in; empty: the host's temporary
    /// directory. The file is unlinked as soon as it is open.
    pub swap_dir: String,
    /// Host files opened at machine start, as file descriptors 3, 4, ... in
    /// order (the host crate opens them; the mm core sees only `BackingFile`s).
    pub files: Vec<String>,
}

impl Default for MachineConfig {
    fn default() -> MachineConfig {
        MachineConfig {
            ram: ByteSize(256 << 20),
            cpus: 1,
            tlb_entries: 512,
            vma_map: VmaMapName::Btree,
            frame_allocator: FrameAllocatorName::Buddy,
            max_map_count: crate::mm::uapi::DEFAULT_MAX_MAP_COUNT,
            fork: ForkName::Cow,
            fault_lock: FaultLockName::PtLock,
            rmap: RmapName::Object,
            reclaim: ReclaimName::TwoList,
            watermarks: WatermarksName::Linux,
            pcp_batch: 32,
            pkeys: false,
            swap_size: ByteSize(0),
            swap_dir: String::new(),
            files: Vec::new(),
        }
    }
}

/// Config spelling of `VmaMapPolicy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmaMapName {
    Btree,
}

impl VmaMapName {
    pub const ALL: &'static [&'static str] = &["btree"];
    pub fn policy(self) -> VmaMapPolicy {
        match self {
            VmaMapName::Btree => VmaMapPolicy::Btree,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            VmaMapName::Btree => "btree",
        }
    }
}

/// Config spelling of `ForkPolicy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForkName {
    Cow,
    SharedPt,
    Eager,
}

impl ForkName {
    pub const ALL: &'static [&'static str] = &["cow", "shared_pt", "eager"];
    pub fn policy(self) -> ForkPolicy {
        match self {
            ForkName::Cow => ForkPolicy::Cow,
            ForkName::SharedPt => ForkPolicy::SharedPt,
            ForkName::Eager => ForkPolicy::Eager,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ForkName::Cow => "cow",
            ForkName::SharedPt => "shared_pt",
            ForkName::Eager => "eager",
        }
    }
    /// The config spelling of `policy`.
    pub fn of(policy: ForkPolicy) -> ForkName {
        match policy {
            ForkPolicy::Cow => ForkName::Cow,
            ForkPolicy::SharedPt => ForkName::SharedPt,
            ForkPolicy::Eager => ForkName::Eager,
        }
    }
}

/// Config spelling of `FaultLock`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultLockName {
    MmLock,
    PtLock,
    PteBit,
}

impl FaultLockName {
    pub const ALL: &'static [&'static str] = &["mm_lock", "pt_lock", "pte_bit"];
    pub fn policy(self) -> FaultLock {
        match self {
            FaultLockName::MmLock => FaultLock::MmLock,
            FaultLockName::PtLock => FaultLock::PtLock,
            FaultLockName::PteBit => FaultLock::PteBit,
        }
    }
    pub fn as_str(self) -> &'static str {
        self.policy().as_str()
    }
    /// The config spelling of `policy`.
    pub fn of(policy: FaultLock) -> FaultLockName {
        match policy {
            FaultLock::MmLock => FaultLockName::MmLock,
            FaultLock::PtLock => FaultLockName::PtLock,
            FaultLock::PteBit => FaultLockName::PteBit,
        }
    }
}

/// Config spelling of `RmapPolicy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RmapName {
    Object,
    PteChain,
    PtePool,
    PrivateVma,
    None,
}

impl RmapName {
    pub const ALL: &'static [&'static str] = &["object", "pte_chain", "pte_pool", "private_vma", "none"];
    pub fn policy(self) -> RmapPolicy {
        match self {
            RmapName::Object => RmapPolicy::Object,
            RmapName::PteChain => RmapPolicy::PteChain,
            RmapName::PtePool => RmapPolicy::PtePool,
            RmapName::PrivateVma => RmapPolicy::PrivateVma,
            RmapName::None => RmapPolicy::None,
        }
    }
    pub fn as_str(self) -> &'static str {
        self.policy().as_str()
    }
}

/// Config spelling of `ReclaimPolicy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReclaimName {
    Clock,
    TwoList,
    VmaScan,
    Mglru,
    ClockPro,
}

impl ReclaimName {
    pub const ALL: &'static [&'static str] = &["clock", "two_list", "vma_scan", "mglru", "clock_pro"];
    pub fn policy(self) -> ReclaimPolicy {
        match self {
            ReclaimName::Clock => ReclaimPolicy::Clock,
            ReclaimName::TwoList => ReclaimPolicy::TwoList,
            ReclaimName::VmaScan => ReclaimPolicy::VmaScan,
            ReclaimName::Mglru => ReclaimPolicy::Mglru,
            ReclaimName::ClockPro => ReclaimPolicy::ClockPro,
        }
    }
    pub fn as_str(self) -> &'static str {
        self.policy().as_str()
    }
}

/// Config values of `watermarks`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarksName {
    Linux,
    None,
}

impl WatermarksName {
    pub const ALL: &'static [&'static str] = &["linux", "none"];
    pub fn as_str(self) -> &'static str {
        match self {
            WatermarksName::Linux => "linux",
            WatermarksName::None => "none",
        }
    }
}

/// Config spelling of `FrameAllocatorPolicy`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameAllocatorName {
    Buddy,
}

impl FrameAllocatorName {
    pub const ALL: &'static [&'static str] = &["buddy"];
    pub fn policy(self) -> FrameAllocatorPolicy {
        match self {
            FrameAllocatorName::Buddy => FrameAllocatorPolicy::Buddy,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            FrameAllocatorName::Buddy => "buddy",
        }
    }
}

impl MachineConfig {
    /// Every key, in declaration order: the field names serde and TOML use.
    /// `apply_pairs` accepts each; vmlab's config tests check that this is
    /// the schema's own list.
    pub const KEYS: &'static [&'static str] = &[
        "ram",
        "cpus",
        "tlb_entries",
        "vma_map",
        "frame_allocator",
        "max_map_count",
        "fork",
        "fault_lock",
        "rmap",
        "reclaim",
        "watermarks",
        "pcp_batch",
        "pkeys",
        "swap_size",
        "swap_dir",
        "files",
    ];

    /// Apply a `key=value,key=value` list (`"rmap=pte_chain,fork=eager"`),
    /// left to right, later pairs winning; spaces around pairs, keys and
    /// values and empty pairs are ignored. Values are written as in
    /// `vmlab --set` without quotes: sizes as `ByteSize::parse` reads them,
    /// integers, `true`/`false`, policy names. `files` cannot be given (its
    /// paths would need a list syntax; use a config file).
    ///
    /// Each value is checked on its own; ranges and combinations of keys are
    /// `validate`'s, which the caller runs on the result. The error names the
    /// pair at fault and what the key accepts:
    /// `fork: unknown value "cwo", expected one of: cow, shared_pt, eager (in "fork=cwo")`.
    ///
    /// This is the no_std parser of such lists (what `VMLAB_TEST_SET` holds
    /// for the tests, docs/CONFIG.md); vmlab's `--set` has its own loader,
    /// which reads TOML-typed values shared with config files.
    pub fn apply_pairs(&mut self, list: &str) -> Result<(), String> {
        for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(format!("{pair:?}: expected key=value (for example fork=eager)"));
            };
            self.apply_pair(key.trim(), value.trim())
                .map_err(|e| format!("{e} (in {pair:?})"))?;
        }
        Ok(())
    }

    /// Set `key` to the text `value` (see `apply_pairs`).
    fn apply_pair(&mut self, key: &str, value: &str) -> Result<(), String> {
        fn int(key: &str, v: &str) -> Result<usize, String> {
            v.parse()
                .map_err(|_| format!("{key}: invalid value {v:?}: expected a non-negative integer"))
        }
        fn name<T: serde::de::DeserializeOwned>(key: &str, v: &str, all: &[&str]) -> Result<T, String> {
            use serde::de::IntoDeserializer;
            let d: serde::de::value::StrDeserializer<'_, serde::de::value::Error> = v.into_deserializer();
            T::deserialize(d).map_err(|_| format!("{key}: unknown value {v:?}, expected one of: {}", all.join(", ")))
        }
        match key {
            "ram" => self.ram = ByteSize::parse(value).map_err(|e| format!("ram: {e}"))?,
            "cpus" => self.cpus = int(key, value)?,
            "tlb_entries" => self.tlb_entries = int(key, value)?,
            "vma_map" => self.vma_map = name(key, value, VmaMapName::ALL)?,
            "frame_allocator" => self.frame_allocator = name(key, value, FrameAllocatorName::ALL)?,
            "max_map_count" => self.max_map_count = int(key, value)?,
            "fork" => self.fork = name(key, value, ForkName::ALL)?,
            "fault_lock" => self.fault_lock = name(key, value, FaultLockName::ALL)?,
            "rmap" => self.rmap = name(key, value, RmapName::ALL)?,
            "reclaim" => self.reclaim = name(key, value, ReclaimName::ALL)?,
            "watermarks" => self.watermarks = name(key, value, WatermarksName::ALL)?,
            "pcp_batch" => self.pcp_batch = int(key, value)?,
            "pkeys" => {
                self.pkeys = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("pkeys: invalid value {value:?}: expected true or false")),
                }
            }
            "swap_size" => self.swap_size = ByteSize::parse(value).map_err(|e| format!("swap_size: {e}"))?,
            "swap_dir" => self.swap_dir = value.to_string(),
            "files" => {
                return Err("files: cannot be set in a key=value list (use a config file or --set files=[...])".into())
            }
            _ => {
                return Err(format!(
                    "unknown key {key:?}; valid keys are: {}",
                    MachineConfig::KEYS.join(", ")
                ))
            }
        }
        Ok(())
    }

    /// Check values serde cannot: ranges and limits. The message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let frames = self.ram.0 / crate::addr::PAGE_SIZE;
        if !self.ram.0.is_multiple_of(crate::addr::PAGE_SIZE) {
            return Err(format!("ram: {} is not a multiple of the 4 KiB page size", self.ram));
        }
        if frames < 64 {
            return Err(format!("ram: {} is too small (at least 256KiB)", self.ram));
        }
        // Frame numbers 0..=MAX_PFN fit a TLB entry: 2^26 frames, 256 GiB.
        if frames > crate::tlb::MAX_PFN as u64 + 1 {
            return Err(format!(
                "ram: {} is larger than the 256GiB a TLB entry can address",
                self.ram
            ));
        }
        if self.cpus == 0 || self.cpus > 64 {
            return Err(format!("cpus: {} is out of range (1..=64)", self.cpus));
        }
        if self.tlb_entries == 0 || self.tlb_entries > 1 << 20 {
            return Err(format!(
                "tlb_entries: {} is out of range (1..=1048576)",
                self.tlb_entries
            ));
        }
        if self.pcp_batch > MAX_PCP_BATCH {
            return Err(format!(
                "pcp_batch: {} is out of range (0..={MAX_PCP_BATCH}; 0 disables the per-CPU lists)",
                self.pcp_batch
            ));
        }
        if self.max_map_count == 0 {
            return Err("max_map_count: must be at least 1".into());
        }
        if !self.swap_size.0.is_multiple_of(crate::addr::PAGE_SIZE) {
            return Err(format!(
                "swap_size: {} is not a multiple of the 4 KiB page size",
                self.swap_size
            ));
        }
        if self.swap_size.0 != 0 && self.swap_size.0 < 2 * crate::addr::PAGE_SIZE {
            return Err(format!(
                "swap_size: {} is too small (at least 8KiB: one page holds the swap header)",
                self.swap_size
            ));
        }
        if self.swap_size.0 > 1 << 52 {
            return Err(format!(
                "swap_size: {} is larger than the 4PiB a swap entry can address",
                self.swap_size
            ));
        }
        if self.rmap == RmapName::PrivateVma && self.fork != ForkName::Eager {
            return Err(format!(
                "rmap: private_vma needs fork = \"eager\" (fork is {:?}): a private page points at its one VMA, \
                 which holds only when no anonymous page is shared copy-on-write (seed 000 #4)",
                self.fork.as_str()
            ));
        }
        Ok(())
    }

    /// Policies in force, as `(key, value)` pairs for a run's header.
    pub fn policies(&self) -> [(&'static str, &'static str); 7] {
        [
            ("vma_map", self.vma_map.as_str()),
            ("frame_allocator", self.frame_allocator.as_str()),
            ("fork", self.fork.as_str()),
            ("fault_lock", self.fault_lock.as_str()),
            ("rmap", self.rmap.as_str()),
            ("reclaim", self.reclaim.as_str()),
            ("watermarks", self.watermarks.as_str()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(list: &str) -> Result<MachineConfig, String> {
        let mut c = MachineConfig::default();
        c.apply_pairs(list).map(|()| c)
    }

    #[test]
    fn pairs_set_every_kind_of_value_left_to_right() {
        let c =
            applied(" ram=1GiB, cpus=4,tlb_entries = 64,fork=shared_pt,fault_lock=pte_bit,rmap=pte_pool,,").unwrap();
        assert_eq!((c.ram, c.cpus, c.tlb_entries), (ByteSize(1 << 30), 4, 64));
        assert_eq!(
            (c.fork, c.fault_lock, c.rmap),
            (ForkName::SharedPt, FaultLockName::PteBit, RmapName::PtePool)
        );
        let c = applied("pcp_batch=0,pkeys=true,max_map_count=9,vma_map=btree,frame_allocator=buddy,cpus=2,cpus=3")
            .unwrap();
        assert_eq!((c.pcp_batch, c.pkeys, c.max_map_count, c.cpus), (0, true, 9, 3));
        assert_eq!(applied("").unwrap(), MachineConfig::default());
    }

    #[test]
    fn every_key_is_accepted_but_files() {
        let d = MachineConfig::default();
        for key in MachineConfig::KEYS {
            let value = match *key {
                "ram" => d.ram.to_string(),
                "pkeys" => "false".to_string(),
                "vma_map" | "frame_allocator" | "fork" | "fault_lock" | "rmap" | "reclaim" | "watermarks" => {
                    let p = d.policies();
                    p.iter().find(|(k, _)| k == key).unwrap().1.to_string()
                }
                "files" => continue,
                _ => "7".to_string(),
            };
            applied(&format!("{key}={value}")).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert!(applied("files=a").unwrap_err().starts_with("files: cannot be set"));
    }

    #[test]
    fn errors_name_the_pair_and_what_the_key_accepts() {
        assert_eq!(
            applied("cpus=2,fork=cwo").unwrap_err(),
            "fork: unknown value \"cwo\", expected one of: cow, shared_pt, eager (in \"fork=cwo\")"
        );
        assert_eq!(
            applied("rmap=chain").unwrap_err(),
            "rmap: unknown value \"chain\", expected one of: object, pte_chain, pte_pool, private_vma, none \
             (in \"rmap=chain\")"
        );
        assert_eq!(
            applied("cpus=four").unwrap_err(),
            "cpus: invalid value \"four\": expected a non-negative integer (in \"cpus=four\")"
        );
        let e = applied("ram=12XB").unwrap_err();
        assert!(
            e.starts_with("ram: invalid size \"12XB\"") && e.ends_with("(in \"ram=12XB\")"),
            "{e}"
        );
        assert!(applied("pkeys=yes").unwrap_err().contains("expected true or false"));
        let e = applied("rmaps=none").unwrap_err();
        assert!(
            e.starts_with("unknown key \"rmaps\"; valid keys are: ram, cpus,") && e.contains("rmap"),
            "{e}"
        );
        assert_eq!(
            applied("fork").unwrap_err(),
            "\"fork\": expected key=value (for example fork=eager)"
        );
    }

    #[test]
    fn every_reclaim_design_parses() {
        for name in ReclaimName::ALL {
            let c = applied(&format!("reclaim={name}")).unwrap();
            assert_eq!(c.reclaim.as_str(), *name);
        }
        assert_eq!(applied("reclaim=mglru").unwrap().reclaim, ReclaimName::Mglru);
        assert_eq!(ReclaimName::Mglru.policy().lru_lists(), 4);
        assert_eq!(
            applied("reclaim=lru_gen").unwrap_err(),
            "reclaim: unknown value \"lru_gen\", expected one of: clock, two_list, vma_scan, mglru, clock_pro \
             (in \"reclaim=lru_gen\")"
        );
    }

    #[test]
    fn pairs_do_not_validate_combinations() {
        // validate() is the caller's: the pair order must not matter.
        let c = applied("rmap=private_vma").unwrap();
        assert!(c.validate().unwrap_err().starts_with("rmap: private_vma needs fork"));
        applied("rmap=private_vma,fork=eager").unwrap().validate().unwrap();
    }
}
