//! Zone watermarks against this host's kernel: fed the host's zones
//! (managed pages from /proc/zoneinfo) and its `vm.min_free_kbytes` and
//! `vm.watermark_scale_factor`, `phys::zone_watermarks` must give the
//! host's min/low/high for every zone.
//!
//! Host facts: reads /proc/zoneinfo and /proc/sys/vm (a host without them
//! fails the test, as every host-judged test does). The host's `min_free_kbytes` may be raised by
//! transparent huge pages (`set_recommended_min_free_kbytes`), so it is
//! taken from the host rather than recomputed; a zone's watermark boost
//! (transient, after fragmentation events) shifts min, low and high alike
//! and is allowed for. Highmem and movable zones, which Linux treats
//! apart, are left out (vmlab has neither).

use vmlab_mm::phys::{min_free_kbytes, zone_watermarks};

struct HostZone {
    name: String,
    managed: u64,
    min: u64,
    low: u64,
    high: u64,
}

fn host_zones() -> Option<Vec<HostZone>> {
    let text = std::fs::read_to_string("/proc/zoneinfo").ok()?;
    let mut zones = Vec::new();
    let mut cur: Option<HostZone> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Node ") {
            zones.extend(cur.take());
            let name = rest.split("zone").nth(1)?.trim().to_string();
            cur = Some(HostZone {
                name,
                managed: 0,
                min: 0,
                low: 0,
                high: 0,
            });
            continue;
        }
        let mut w = line.split_whitespace();
        let (Some(k), Some(v)) = (w.next(), w.next()) else {
            continue;
        };
        let Some(z) = cur.as_mut() else { continue };
        let Ok(v) = v.parse::<u64>() else { continue };
        match k {
            "managed" => z.managed = v,
            "min" => z.min = v,
            "low" => z.low = v,
            "high" => z.high = v,
            _ => {}
        }
    }
    zones.extend(cur);
    Some(zones)
}

fn sysctl(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/sys/vm/{name}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn zone_watermarks_match_the_host_kernel() {
    let (Some(zones), Some(kb), Some(scale)) = (
        host_zones(),
        sysctl("min_free_kbytes"),
        sysctl("watermark_scale_factor"),
    ) else {
        panic!("this host has no readable /proc/zoneinfo or /proc/sys/vm/{{min_free_kbytes,watermark_scale_factor}}");
    };
    let low: Vec<&HostZone> = zones
        .iter()
        .filter(|z| z.managed > 0 && z.name != "Movable" && z.name != "HighMem")
        .collect();
    assert!(!low.is_empty(), "no populated zone in /proc/zoneinfo");
    let managed: Vec<u64> = low.iter().map(|z| z.managed).collect();
    let ours = zone_watermarks(kb, scale, &managed);
    for (z, w) in low.iter().zip(&ours) {
        let boost = z
            .min
            .checked_sub(w.min)
            .unwrap_or_else(|| panic!("{}: min {} below ours {}", z.name, z.min, w.min));
        assert_eq!(
            (z.min, z.low, z.high),
            (w.min + boost, w.low + boost, w.high + boost),
            "zone {} (managed {}): host min/low/high vs ours {w:?} (boost {boost})",
            z.name,
            z.managed
        );
    }
    // The boot-time formula: the host's value is Linux's √(16 × lowmem KiB),
    // or larger where transparent huge pages raised it (or an administrator
    // did: then this fails and says so).
    let lowmem_kb: u64 = managed.iter().sum::<u64>() * 4;
    let formula = min_free_kbytes(lowmem_kb);
    assert!(kb >= formula, "host min_free_kbytes {kb} below the formula's {formula}");
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[never]") {
        assert_eq!(kb, formula, "THP off: the host's min_free_kbytes is the formula's");
    }
}

#[test]
fn the_comparison_can_fail() {
    // Off by one page of min_free_kbytes in one zone's share shows.
    let a = zone_watermarks(67_584, 10, &[3840, 772_798, 5_394_258]);
    let b = zone_watermarks(67_584 + 4096, 10, &[3840, 772_798, 5_394_258]);
    assert_ne!(a, b);
    // This host at the time of writing (Linux 6.18, 24 GiB): DMA32 2115/2887/3659.
    assert_eq!((a[1].min, a[1].low, a[1].high), (2115, 2887, 3659));
}
