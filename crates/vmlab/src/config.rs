//! Loading the machine config: the built-in defaults, then a TOML file
//! (`--config FILE`), then any number of `--set key=value` overrides, in that
//! order, deserialized into the one schema, [`MachineConfig`], and validated.
//!
//! Every error names what is wrong and where it came from: the key, the value,
//! the allowed values, the file and line, or the `--set` argument. The valid
//! keys and the allowed values of policy keys are read off the schema itself
//! (from serde's own errors), so a key added to `MachineConfig` needs no change
//! here.

use crate::mm::system::MachineConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use toml::{Spanned, Table, Value};

/// Where a config value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A line of a config file.
    File { path: PathBuf, line: usize },
    /// A `--set key=value` argument (the whole argument).
    Set(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the built-in default"),
            Origin::File { path, line } => write!(f, "{}:{line}", path.display()),
            Origin::Set(arg) => write!(f, "--set {arg}"),
        }
    }
}

/// A config could not be loaded. Every variant's message names the key, value,
/// file or argument at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {err}", path.display())]
    Read { path: PathBuf, err: std::io::Error },
    #[error("{}:{line}:{col}: TOML syntax error: {msg}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        col: usize,
        msg: String,
    },
    #[error("{origin}: unknown key {key:?}{}; valid keys are: {}", suggestion(key, valid), valid.join(", "))]
    UnknownKey {
        key: String,
        origin: Origin,
        valid: Vec<String>,
    },
    #[error("--set {arg:?}: expected key=value (for example --set ram=1GiB)")]
    BadSet { arg: String },
    #[error("{key}: {msg} (from {origin})")]
    BadValue { key: String, msg: String, origin: Origin },
    #[error("{msg} (from {origin})")]
    Invalid { msg: String, origin: Origin },
    #[error("the config does not fit the schema: {0}")]
    Schema(String),
}

/// The host's core count, capped at the 64 CPUs a machine may have.
pub fn host_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 64)
}

/// The built-in config: `MachineConfig::default()` with one CPU per host core.
pub fn default_config() -> MachineConfig {
    MachineConfig {
        cpus: host_cpus(),
        ..MachineConfig::default()
    }
}

/// A string no key or policy is spelled as, to make serde list the real ones.
const PROBE: &str = "\u{1}vmlab-probe";

/// The names serde quotes in backticks in `msg` after `prefix`
/// ("unknown field `x`, expected one of `a`, `b`").
fn quoted_names(msg: &str, prefix: &str) -> Option<Vec<String>> {
    let msg = first_line(msg);
    let start = msg.find(prefix)?;
    let rest = &msg[start + prefix.len()..];
    let (_, expected) = rest.split_once(", expected")?;
    Some(expected.split('`').skip(1).step_by(2).map(str::to_string).collect())
}

/// Every key of the schema, in declaration order.
pub fn valid_keys() -> Vec<String> {
    let mut t = Table::new();
    t.insert(PROBE.into(), Value::Integer(0));
    match MachineConfig::deserialize(Value::Table(t)) {
        Err(e) => quoted_names(&e.to_string(), &format!("unknown field `{PROBE}`")).unwrap_or_default(),
        Ok(_) => Vec::new(),
    }
}

/// The values `key` accepts, if it is a policy (an enum of names); `None`
/// for keys that take numbers or sizes.
pub fn allowed_values(key: &str) -> Option<Vec<String>> {
    let mut t = Table::new();
    t.insert(key.into(), Value::String(PROBE.into()));
    match MachineConfig::deserialize(Value::Table(t)) {
        Err(e) => quoted_names(&e.to_string(), &format!("unknown variant `{PROBE}`")),
        Ok(_) => None,
    }
}

/// The first line of a serde message (toml adds "in `key`" lines below it).
fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or("").trim()
}

/// serde's message for a bad value, without Rust type names
/// ("invalid type: string \"x\", expected usize" → "expected a non-negative integer").
fn type_message(msg: &str) -> String {
    let line = first_line(msg);
    let line = match line.split_once(", expected ") {
        Some((head, expected)) if head.starts_with("invalid type:") || head.starts_with("invalid value:") => {
            return format!("expected {}", plain_type(expected))
        }
        _ => line,
    };
    match line.split_once("expected ") {
        Some((head, ty)) => format!("{head}expected {}", plain_type(ty)),
        None => line.to_string(),
    }
}

fn plain_type(ty: &str) -> &str {
    match ty {
        "usize" | "u64" | "u32" | "u16" | "u8" => "a non-negative integer",
        "isize" | "i64" | "i32" | "i16" | "i8" => "an integer",
        "a boolean" | "bool" => "true or false",
        "f64" | "f32" => "a number",
        other => other,
    }
}

/// Edit distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// ` (did you mean "ram"?)` if `key` is close to a valid key.
fn suggestion(key: &str, valid: &[String]) -> String {
    valid
        .iter()
        .map(|v| (distance(key, v), v))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map_or(String::new(), |(_, v)| format!(" (did you mean {v:?}?)"))
}

/// A value as it would be written in TOML, for messages.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Parse the value of `--set key=value`: a TOML value if it is one, else the
/// text as a string (so `--set ram=1GiB` and `--set vma_map=btree` need no quotes).
pub fn parse_set_value(text: &str) -> Value {
    let doc = format!("v = {text}");
    match doc.parse::<Table>() {
        Ok(mut t) if t.len() == 1 => t.remove("v").unwrap_or_else(|| Value::String(text.into())),
        _ => Value::String(text.into()),
    }
}

/// 1-based line and column of byte offset `pos` in `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A config being assembled: values by key, each with its origin.
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    values: BTreeMap<String, (Value, Origin)>,
    valid: Vec<String>,
}

impl Default for ConfigBuilder {
    fn default() -> ConfigBuilder {
        ConfigBuilder::new()
    }
}

impl ConfigBuilder {
    /// Start from the built-in defaults.
    pub fn new() -> ConfigBuilder {
        ConfigBuilder {
            values: BTreeMap::new(),
            valid: valid_keys(),
        }
    }

    fn put(&mut self, key: &str, value: Value, origin: Origin) -> Result<(), ConfigError> {
        if !self.valid.iter().any(|k| k == key) {
            return Err(ConfigError::UnknownKey {
                key: key.into(),
                origin,
                valid: self.valid.clone(),
            });
        }
        self.values.insert(key.into(), (value, origin));
        Ok(())
    }

    /// Apply the TOML text of a config file (`path` is used in messages only).
    pub fn apply_toml(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let doc: BTreeMap<Spanned<String>, Spanned<Value>> = toml::from_str(text).map_err(|e| {
            let (line, col) = line_col(text, e.span().map_or(0, |s| s.start));
            ConfigError::Syntax {
                path: path.into(),
                line,
                col,
                msg: e.message().trim().lines().map(str::trim).collect::<Vec<_>>().join(", "),
            }
        })?;
        // In file order, so the first bad key is the one reported.
        let mut entries: Vec<_> = doc.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, v) in entries {
            let (line, _) = line_col(text, k.span().start);
            let origin = Origin::File {
                path: path.into(),
                line,
            };
            self.put(k.get_ref(), v.into_inner(), origin)?;
        }
        Ok(())
    }

    /// Read and apply a config file.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.into(), err })?;
        self.apply_toml(path, &text)
    }

    /// Apply one `--set key=value` argument.
    ///
    /// Not `MachineConfig::apply_pairs` (vmlab-mm's no_std parser of
    /// `key=value` lists, which the tests' `VMLAB_TEST_SET` uses): a `--set`
    /// value is a TOML value like a config file's (`--set 'files=["a", "b"]'`,
    /// quoted strings), goes through the same serde path and keeps its
    /// origin for messages. A test below checks both accept the same keys
    /// and values.
    pub fn apply_set(&mut self, arg: &str) -> Result<(), ConfigError> {
        let Some((key, value)) = arg.split_once('=') else {
            return Err(ConfigError::BadSet { arg: arg.into() });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(ConfigError::BadSet { arg: arg.into() });
        }
        self.put(key, parse_set_value(value.trim()), Origin::Set(arg.into()))
    }

    /// Check each value on its own, then build and validate the whole config.
    pub fn build(&self) -> Result<MachineConfig, ConfigError> {
        let mut table = match Value::try_from(default_config()) {
            Ok(Value::Table(t)) => t,
            _ => Table::new(),
        };
        for (key, (value, origin)) in &self.values {
            let mut one = Table::new();
            one.insert(key.clone(), value.clone());
            if let Err(e) = MachineConfig::deserialize(Value::Table(one)) {
                let msg = match (value, allowed_values(key)) {
                    (Value::String(s), Some(allowed)) => {
                        format!("unknown value {s:?}, expected one of: {}", allowed.join(", "))
                    }
                    (_, Some(allowed)) => {
                        format!("invalid value {}, expected one of: {}", show(value), allowed.join(", "))
                    }
                    (_, None) => format!("invalid value {}: {}", show(value), type_message(&e.to_string())),
                };
                return Err(ConfigError::BadValue {
                    key: key.clone(),
                    msg,
                    origin: origin.clone(),
                });
            }
            table.insert(key.clone(), value.clone());
        }
        let cfg = MachineConfig::deserialize(Value::Table(table))
            .map_err(|e| ConfigError::Schema(first_line(&e.to_string()).to_string()))?;
        cfg.validate().map_err(|msg| {
            // validate() starts its message with the key at fault.
            let key = msg.split(':').next().unwrap_or("");
            let origin = self.values.get(key).map_or(Origin::Default, |(_, o)| o.clone());
            ConfigError::Invalid { msg, origin }
        })?;
        Ok(cfg)
    }
}

/// Load the effective config: defaults, then `file` if given, then `sets` in order.
pub fn load(file: Option<&Path>, sets: &[String]) -> Result<MachineConfig, ConfigError> {
    let mut b = ConfigBuilder::new();
    if let Some(path) = file {
        b.apply_file(path)?;
    }
    for s in sets {
        b.apply_set(s)?;
    }
    b.build()
}

/// The config as a TOML document that `load` reads back to the same config,
/// with a header and the allowed values of each policy key as comments.
pub fn to_toml(cfg: &MachineConfig) -> Result<String, toml::ser::Error> {
    let body = toml::to_string(cfg)?;
    let mut out = String::from(
        "# vmlab machine config: defaults with --config and --set applied.\n\
         # Save it, edit it and pass it back with --config FILE; keys are described in docs/CONFIG.md.\n",
    );
    for line in body.lines() {
        out.push_str(line);
        if let Some((key, _)) = line.split_once(" = ") {
            if let Some(allowed) = allowed_values(key.trim()) {
                out.push_str(&format!(" # one of: {}", allowed.join(", ")));
            }
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::system::ByteSize;

    fn sets(args: &[&str]) -> Result<MachineConfig, ConfigError> {
        let v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        load(None, &v)
    }

    #[test]
    fn defaults_use_host_cpus() {
        let c = load(None, &[]).unwrap();
        assert_eq!(c.cpus, host_cpus());
        assert!((1..=64).contains(&c.cpus));
        assert_eq!(c.ram, MachineConfig::default().ram);
    }

    #[test]
    fn schema_keys_and_policy_values_are_discovered() {
        let keys = valid_keys();
        for k in [
            "ram",
            "cpus",
            "tlb_entries",
            "vma_map",
            "frame_allocator",
            "max_map_count",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} missing from {keys:?}");
        }
        assert_eq!(allowed_values("vma_map").unwrap(), vec!["btree".to_string()]);
        assert!(allowed_values("frame_allocator")
            .unwrap()
            .contains(&"buddy".to_string()));
        assert_eq!(allowed_values("ram"), None);
        assert_eq!(allowed_values("cpus"), None);
    }

    #[test]
    fn set_values_parse_as_toml_or_string() {
        assert_eq!(parse_set_value("4"), Value::Integer(4));
        assert_eq!(parse_set_value("1GiB"), Value::String("1GiB".into()));
        assert_eq!(parse_set_value("\"btree\""), Value::String("btree".into()));
        assert_eq!(parse_set_value("btree"), Value::String("btree".into()));
        assert_eq!(parse_set_value("1\nram = 5"), Value::String("1\nram = 5".into()));
    }

    #[test]
    fn overrides_apply_in_order() {
        let c = sets(&["ram=1GiB", "cpus=4", "cpus=2", "tlb_entries=64"]).unwrap();
        assert_eq!(c.ram, ByteSize(1 << 30));
        assert_eq!(c.cpus, 2);
        assert_eq!(c.tlb_entries, 64);
    }

    #[test]
    fn unknown_key_is_named_with_valid_keys() {
        let e = sets(&["rams=1GiB"]).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, ConfigError::UnknownKey { .. }));
        assert!(m.contains("\"rams\"") && m.contains("--set rams=1GiB"), "{m}");
        assert!(m.contains("did you mean \"ram\"?"), "{m}");
        assert!(m.contains("ram, cpus, tlb_entries"), "{m}");
    }

    #[test]
    fn bad_policy_value_lists_allowed_values() {
        let m = sets(&["vma_map=list"]).unwrap_err().to_string();
        assert!(
            m.starts_with("vma_map: unknown value \"list\", expected one of: btree"),
            "{m}"
        );
        let m = sets(&["vma_map=3"]).unwrap_err().to_string();
        assert!(m.starts_with("vma_map: invalid value 3, expected one of: btree"), "{m}");
    }

    #[test]
    fn bad_size_and_range_are_named() {
        let m = sets(&["ram=12XB"]).unwrap_err().to_string();
        assert!(
            m.starts_with("ram: invalid value \"12XB\"") && m.contains("unit"),
            "{m}"
        );
        let m = sets(&["cpus=0"]).unwrap_err().to_string();
        assert!(
            m.starts_with("cpus: 0 is out of range") && m.contains("--set cpus=0"),
            "{m}"
        );
        let m = sets(&["cpus=four"]).unwrap_err().to_string();
        assert_eq!(
            m,
            "cpus: invalid value \"four\": expected a non-negative integer (from --set cpus=four)"
        );
        let m = sets(&["cpus=-1"]).unwrap_err().to_string();
        assert_eq!(
            m,
            "cpus: invalid value -1: expected a non-negative integer (from --set cpus=-1)"
        );
    }

    #[test]
    fn set_without_equals_is_rejected() {
        assert!(matches!(sets(&["ram"]), Err(ConfigError::BadSet { .. })));
        assert!(matches!(sets(&["=4"]), Err(ConfigError::BadSet { .. })));
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let p = Path::new("m.toml");
        let mut b = ConfigBuilder::new();
        let e = b.apply_toml(p, "cpus = 2\nram = = 3\n").unwrap_err();
        let m = e.to_string();
        assert!(m.starts_with("m.toml:2:"), "{m}");
        assert!(m.contains("TOML syntax error"), "{m}");

        let mut b = ConfigBuilder::new();
        let m = b.apply_toml(p, "cpus = 2\n\nbogus = 1\n").unwrap_err().to_string();
        assert!(m.starts_with("m.toml:3: unknown key \"bogus\""), "{m}");

        let mut b = ConfigBuilder::new();
        b.apply_toml(p, "cpus = 2\nvma_map = \"list\"\n").unwrap();
        let m = b.build().unwrap_err().to_string();
        assert!(
            m.contains("vma_map: unknown value \"list\"") && m.contains("m.toml:2"),
            "{m}"
        );

        let mut b = ConfigBuilder::new();
        b.apply_toml(p, "[ram]\nx = 1\n").unwrap();
        let m = b.build().unwrap_err().to_string();
        assert!(m.starts_with("ram: invalid value") && m.contains("m.toml:1"), "{m}");
    }

    #[test]
    fn missing_file_is_named() {
        let m = load(Some(Path::new("/nonexistent/vmlab.toml")), &[])
            .unwrap_err()
            .to_string();
        assert!(m.contains("/nonexistent/vmlab.toml"), "{m}");
    }

    #[test]
    fn to_toml_round_trips() {
        let c = sets(&["ram=64MiB", "cpus=3", "max_map_count=100"]).unwrap();
        let text = to_toml(&c).unwrap();
        assert!(text.contains("vma_map = \"btree\" # one of: btree"), "{text}");
        let mut b = ConfigBuilder::new();
        b.apply_toml(Path::new("x.toml"), &text).unwrap();
        assert_eq!(b.build().unwrap(), c);
    }

    #[test]
    fn file_then_set() {
        let mut b = ConfigBuilder::new();
        b.apply_toml(Path::new("x.toml"), "cpus = 3\nram = \"32MiB\"\n")
            .unwrap();
        b.apply_set("cpus=1").unwrap();
        let c = b.build().unwrap();
        assert_eq!((c.cpus, c.ram), (1, ByteSize(32 << 20)));
    }

    #[test]
    fn key_value_lists_know_the_same_keys_and_values_as_the_loader() {
        assert_eq!(MachineConfig::KEYS, valid_keys().as_slice());
        for key in valid_keys() {
            let Some(allowed) = allowed_values(&key) else { continue };
            let e = MachineConfig::default().apply_pairs(&format!("{key}=x")).unwrap_err();
            assert!(e.contains(&format!("expected one of: {}", allowed.join(", "))), "{e}");
            for v in allowed {
                let arg = format!("{key}={v}");
                let mut c = MachineConfig::default();
                c.apply_pairs(&arg).unwrap();
                let mut b = ConfigBuilder::new();
                b.apply_set(&arg).unwrap();
                let loaded = b.build();
                // Combinations validate() refuses (rmap=private_vma alone) are compared unvalidated.
                if let Ok(loaded) = loaded {
                    assert_eq!(MachineConfig { cpus: 1, ..loaded }, c, "{arg}");
                }
            }
        }
        let list = "ram=64MiB,cpus=3,tlb_entries=16,pcp_batch=0,pkeys=true,max_map_count=100,fork=eager";
        let mut c = MachineConfig::default();
        c.apply_pairs(list).unwrap();
        let sets: Vec<String> = list.split(',').map(str::to_string).collect();
        assert_eq!(load(None, &sets).unwrap(), c);
    }

    #[test]
    fn every_key_is_documented_in_config_md() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIG.md");
        let doc = std::fs::read_to_string(path).expect("docs/CONFIG.md exists");
        for key in valid_keys() {
            assert!(
                doc.contains(&format!("| `{key}` |")),
                "docs/CONFIG.md has no row for key `{key}`"
            );
            for v in allowed_values(&key).unwrap_or_default() {
                assert!(
                    doc.contains(&format!("`{v}`")),
                    "docs/CONFIG.md does not name `{key}` value `{v}`"
                );
            }
        }
    }
}
