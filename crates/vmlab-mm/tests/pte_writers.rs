//! One writer of PTEs (docs/ARCHITECTURE.md, "The mechanism under every PTE
//! change"): scans vmlab-mm's source so that only `mm/pte_ops.rs` changes a
//! leaf entry or a mapped frame's `mapcount`, only the hardware walk sets a
//! leaf's accessed/dirty bits, and the VM takes frames only through
//! `PhysMem::alloc_page`. A file's unit-test module (`#[cfg(..test..)]`
//! then `mod tests`, at the end of the file) is not the VM and is not
//! scanned: a checker test may plant a corrupt mapcount, an allocator test
//! may hold frames through the public handle API. Leaf entries are `pgtable::LeafRef`s, whose write
//! methods are crate-private and named `raw_*`; outside the crate none can
//! be called at all, so the source of the crate is all there is to scan.
//!
//! What it cannot see: a module that reaches a leaf table's words through
//! `phys::Ram` directly instead of through `LeafRef` (page-table words are
//! RAM words). The rule for that is `pgtable`'s: leaf tables are reached
//! through `leaf`, `leaf_walk`, `leaf_alloc*`, `leaf_slot`, `for_each_leaf`.

use std::path::{Path, PathBuf};

/// Calls that write a leaf entry, and the files allowed to make them.
const RULES: &[(&str, &[&str])] = &[
    (".raw_cas(", &["mm/pte_ops.rs", "pgtable/walk.rs"]),
    (".raw_store(", &["mm/pte_ops.rs", "pgtable/walk.rs"]),
    (".raw_swap(", &["mm/pte_ops.rs", "pgtable/walk.rs"]),
    (".raw_update(", &["mm/pte_ops.rs", "pgtable/walk.rs"]),
    (
        ".mmu_set_accessed_dirty(",
        &["system/cpu.rs", "mm/fault.rs", "pgtable/walk.rs"],
    ),
    ("LeafRef(", &["pgtable/walk.rs"]),
    // A mapped frame's mapcount changes with its PTEs; the descriptor's
    // reset of a frame being allocated or freed (never mapped) is phys's.
    ("mapcount.store(", &["mm/pte_ops.rs", "phys/desc.rs"]),
    ("mapcount.fetch_add(", &["mm/pte_ops.rs"]),
    ("mapcount.fetch_sub(", &["mm/pte_ops.rs"]),
    ("mapcount.swap(", &["mm/pte_ops.rs"]),
    ("mapcount.compare_exchange", &["mm/pte_ops.rs"]),
    ("mapcount.fetch_update(", &["mm/pte_ops.rs"]),
    // The VM takes frames in one place (`PhysMem::alloc_page`), where the
    // next issue makes allocation reclaim instead of failing: the public
    // allocations (which return `OwnedFrame` handles) are for code outside
    // the VM, and `phys/mod.rs` builds them and `alloc_page` on private
    // by-number helpers.
    (".alloc_frames(", &["phys/mod.rs"]),
    (".alloc_zeroed(", &["phys/mod.rs"]),
    (".alloc_zeroed_on(", &["phys/mod.rs"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every (file, line, call) of `text` (the file `rel`) that breaks a rule.
/// Comment lines are not code, nor is the unit-test module that ends a file.
fn violations(rel: &str, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let tests = lines
        .windows(2)
        .position(|w| {
            let attr = w[0].trim();
            attr.starts_with("#[cfg(") && attr.contains("test") && w[1].trim_start().starts_with("mod tests")
        })
        .unwrap_or(lines.len());
    for (n, line) in lines[..tests].iter().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (call, allowed) in RULES {
            // `LeafRef(` must not match the type in `-> LeafRef<'a>` or `Option<LeafRef`.
            let hit = if *call == "LeafRef(" {
                code.match_indices(call).any(|(i, _)| {
                    !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') && !code[..i].ends_with("struct ")
                })
            } else {
                code.contains(call)
            };
            if hit && !allowed.contains(&rel) {
                bad.push(format!("{rel}:{}: {call} ({})", n + 1, line.trim()));
            }
        }
    }
    bad
}

#[test]
fn only_pte_ops_writes_leaf_entries_and_mapcounts_and_one_place_allocates() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} source files under {src:?}",
        files.len()
    );
    let mut bad = Vec::new();
    let mut seen_ops = false;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap();
        seen_ops |= rel == "mm/pte_ops.rs" && text.contains(".raw_cas(");
        bad.extend(violations(&rel, &text));
    }
    assert!(seen_ops, "mm/pte_ops.rs no longer writes entries: update the rules");
    assert!(
        bad.is_empty(),
        "leaf entries or mapcounts written outside mm/pte_ops.rs:\n{}",
        bad.join("\n")
    );
}

/// The scan finds a write where it is not allowed, and ignores comments
/// and the type's name.
#[test]
fn the_scan_catches_a_stray_writer() {
    let stray = "fn f(e: LeafRef<'_>) {\n    e.raw_store(Pte(0));\n    d.mapcount.fetch_sub(1, Ordering::AcqRel);\n}\n";
    let v = violations("mm/munmap.rs", stray);
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v[0].starts_with("mm/munmap.rs:2: .raw_store("), "{v:?}");
    assert!(v[1].starts_with("mm/munmap.rs:3: mapcount.fetch_sub("), "{v:?}");
    assert!(violations("mm/pte_ops.rs", stray).is_empty());
    assert!(violations(
        "mm/munmap.rs",
        "// e.raw_store(x) is pte_ops's job\nlet x: Option<LeafRef<'a>> = None;\n"
    )
    .is_empty());
    assert_eq!(violations("mm/fork.rs", "let r = LeafRef(word);\n").len(), 1);
    assert_eq!(
        violations("mm/fault.rs", "let p = cx.phys.alloc_zeroed(FrameUse::Anon);\n").len(),
        1
    );
    assert!(violations("phys/backing.rs", "let p = alloc::alloc::alloc_zeroed(layout);\n").is_empty());
    // A unit-test module at the end of a file is skipped; code before it is not.
    let with_tests = "let f = phys.alloc_frames(1, 1, u);\n#[cfg(all(test, not(loom)))]\nmod tests {\n    d.mapcount.fetch_add(1, Relaxed);\n}\n";
    let v = violations("pgtable/walk.rs", with_tests);
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].starts_with("pgtable/walk.rs:1: .alloc_frames("), "{v:?}");
}
