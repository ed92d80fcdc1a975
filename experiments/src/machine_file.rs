//! A machine from the command line: a preset name or a TOML file, then
//! `--set path=value` overrides, then validation.
//!
//! The configuration is handled as a `toml::Value` tree: a preset is serialised
//! into one, a file parsed into one, each `--set` replaces or adds one leaf, and
//! the tree is deserialised into a [`MachineConfig`] (whose sections reject
//! unknown keys) and validated. When deserialisation fails, the error is pinned to
//! where it came from: a line of the file or the `--set` that introduced it.

use std::path::{Path, PathBuf};

use fourf_sim::{presets, MachineConfig, SimError};
use thiserror::Error;
use toml::{Table, Value};

/// What can go wrong building a machine; each message names the preset, file,
/// line or `--set` and says what would be valid.
#[derive(Debug, Error)]
pub enum MachineFileError {
    /// Neither a preset nor a file.
    #[error("unknown machine preset `{name}`; valid presets: {valid}, or a path to a machine .toml file")]
    UnknownPreset {
        /// The name given.
        name: String,
        /// The preset names, comma separated.
        valid: String,
    },
    /// The machine file does not exist.
    #[error("{}: machine file not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The machine file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A TOML syntax error, unknown key or wrongly typed value in the file.
    #[error("{}: line {line}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A `--set` without `=` or without a key.
    #[error("`--set {set}`: expected path=value, e.g. `--set lens2.focal_length_m=0.2`")]
    SetSyntax {
        /// The argument as given.
        set: String,
    },
    /// A `--set` whose key is unknown, whose path runs through a value, or whose
    /// value has the wrong type.
    #[error("`--set {set}`: {message}")]
    Set {
        /// The argument as given.
        set: String,
        /// What is wrong.
        message: String,
    },
    /// A value out of its valid range.
    #[error(transparent)]
    Invalid(#[from] SimError),
}

/// One `--set path=value`.
pub(crate) struct Override<'a> {
    pub(crate) raw: &'a str,
    pub(crate) path: Vec<&'a str>,
    pub(crate) value: Value,
}

/// The machine named by `spec` (a preset name, see [`presets::MACHINES`], or a path
/// to a `.toml` file) with every `--set path=value` in `sets` applied, validated.
///
/// A value is read as a TOML value (`0.2`, `512`, `true`, `"text"`), anything that
/// does not parse as one is taken as a bare string. A path may add a key that is
/// missing from its table (an unset optional, e.g. `pupil.radius_m`), but not one
/// the table does not have. A file without a `name` is named after its stem.
pub fn load_machine(spec: &str, sets: &[String]) -> Result<MachineConfig, MachineFileError> {
    let overrides = sets.iter().map(|s| parse_set(s)).collect::<Result<Vec<_>, _>>()?;
    let (base, file) = base_tree(spec)?;
    let mut tree = base.clone();
    for o in &overrides {
        apply(&mut tree, o)?;
    }
    let config = match deserialize(&tree) {
        Ok(c) => c,
        Err(message) => return Err(blame(&base, file, &overrides, message)),
    };
    config.validate()?;
    Ok(config)
}

/// Keys the latency model leans on that a machine *file* `spec` leaves to their
/// defaults (neither in the file nor in `sets`); none for a preset, whose values
/// are all chosen and cited.
pub fn timing_defaults_used(spec: &str, sets: &[String]) -> Result<Vec<&'static str>, MachineFileError> {
    const KEYS: [&str; 5] = [
        "input_slm.refresh_hz",
        "filter_slm.refresh_hz",
        "camera.exposure_s",
        "camera.readout_s",
        "timing.link_bits_per_s",
    ];
    let (tree, file) = base_tree(spec)?;
    if file.is_none() {
        return Ok(Vec::new());
    }
    let overrides = sets.iter().map(|s| parse_set(s)).collect::<Result<Vec<_>, _>>()?;
    let in_file = |key: &str| {
        let mut parts = key.split('.');
        let (section, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        tree.get(section)
            .and_then(Value::as_table)
            .is_some_and(|t| t.contains_key(name))
    };
    Ok(KEYS
        .into_iter()
        .filter(|k| !in_file(k) && !overrides.iter().any(|o| o.path.join(".") == *k))
        .collect())
}

/// The machine `spec` with `sets` applied, validated, as a complete machine file.
pub fn machine_toml(spec: &str, sets: &[String]) -> anyhow::Result<String> {
    let config = load_machine(spec, sets)?;
    Ok(toml::to_string(&config)?)
}

/// The tree of a preset or a file; for a file also its path and text.
fn base_tree(spec: &str) -> Result<(Table, Option<(PathBuf, String)>), MachineFileError> {
    if let Some(config) = presets::machine(spec) {
        let Value::Table(t) = Value::try_from(&config).expect("a preset serialises to TOML") else {
            unreachable!("a struct serialises to a table")
        };
        return Ok((t, None));
    }
    let path = Path::new(spec);
    let looks_like_file = spec.ends_with(".toml") || spec.contains(std::path::MAIN_SEPARATOR) || path.exists();
    if !looks_like_file {
        let valid: Vec<&str> = presets::MACHINES.iter().map(|(n, _)| *n).collect();
        return Err(MachineFileError::UnknownPreset {
            name: spec.to_string(),
            valid: valid.join(", "),
        });
    }
    let text = fourf_sim::files::read_text_limited(path, fourf_sim::files::MAX_CONFIG_BYTES).map_err(|error| {
        match error.kind() {
            std::io::ErrorKind::NotFound => MachineFileError::NotFound { path: path.into() },
            _ => MachineFileError::Read {
                path: path.into(),
                error,
            },
        }
    })?;
    let mut t: Table = toml::from_str(&text).map_err(|e| file_error(path, &text, &e))?;
    if let (false, Some(stem)) = (t.contains_key("name"), path.file_stem()) {
        t.insert("name".into(), Value::String(stem.to_string_lossy().into_owned()));
    }
    Ok((t, Some((path.to_path_buf(), text))))
}

pub(crate) fn parse_set(raw: &str) -> Result<Override<'_>, MachineFileError> {
    let syntax = || MachineFileError::SetSyntax { set: raw.to_string() };
    let (path, value) = raw.split_once('=').ok_or_else(syntax)?;
    let path: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if path.iter().any(|k| k.is_empty()) {
        return Err(syntax());
    }
    let value = value.trim();
    let value = toml::from_str::<Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(value.to_string()));
    Ok(Override { raw, path, value })
}

/// Sets the leaf `o.path` to `o.value`, creating missing tables on the way.
pub(crate) fn apply(tree: &mut Table, o: &Override) -> Result<(), MachineFileError> {
    let (leaf, parents) = o.path.split_last().expect("paths are non-empty");
    let mut table = tree;
    for (depth, key) in parents.iter().enumerate() {
        let entry = table
            .entry(key.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        table = entry.as_table_mut().ok_or_else(|| MachineFileError::Set {
            set: o.raw.to_string(),
            message: format!("`{}` is a value, not a table of settings", o.path[..=depth].join(".")),
        })?;
    }
    table.insert(leaf.to_string(), o.value.clone());
    Ok(())
}

fn deserialize(tree: &Table) -> Result<MachineConfig, String> {
    Value::Table(tree.clone())
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())
}

/// The error of the first stage (base, then each override in turn) at which the
/// final deserialisation error `message` appears.
fn blame(base: &Table, file: Option<(PathBuf, String)>, overrides: &[Override], message: String) -> MachineFileError {
    let mut tree = base.clone();
    if deserialize(&tree).err().as_ref() == Some(&message) {
        return match file {
            Some((path, text)) => match toml::from_str::<MachineConfig>(&text) {
                Err(e) => file_error(&path, &text, &e),
                // Only the inserted `name` differs; without a span, say line 1.
                Ok(_) => MachineFileError::File { path, line: 1, message },
            },
            None => unreachable!("presets deserialise: {message}"),
        };
    }
    for o in overrides {
        apply(&mut tree, o).expect("applied before");
        if deserialize(&tree).err().as_ref() == Some(&message) {
            return MachineFileError::Set {
                set: o.raw.to_string(),
                message,
            };
        }
    }
    unreachable!("the full tree fails with: {message}")
}

pub(crate) fn file_error(path: &Path, text: &str, e: &toml::de::Error) -> MachineFileError {
    let start = e.span().map_or(0, |s| s.start.min(text.len()));
    let line = text[..start].matches('\n').count() + 1;
    let message = e.message().trim().replace('\n', " ");
    // The offending line itself, so that the key is named even where the parser's
    // message does not (e.g. "wanted string or table" for a bad enum value).
    let source = text.lines().nth(line - 1).map(str::trim).unwrap_or_default();
    let message =
        if e.span().is_some() && !source.is_empty() && source.chars().count() <= 80 && !message.contains(source) {
            format!("`{source}`: {message}")
        } else {
            message
        };
    MachineFileError::File {
        path: path.to_path_buf(),
        line,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    fn err(spec: &str, s: &[&str]) -> String {
        load_machine(spec, &sets(s)).unwrap_err().to_string()
    }

    #[test]
    fn presets_load_unchanged() {
        for (name, _) in presets::MACHINES {
            assert_eq!(load_machine(name, &[]).unwrap(), presets::machine(name).unwrap());
        }
    }

    #[test]
    fn sets_replace_and_add_leaves() {
        let m = load_machine(
            "ideal",
            &sets(&[
                "lens2.focal_length_m=0.2",
                "lens1.focal_length_m = 1",
                "pupil.radius_m=1e-3",
                "pupil.zernike_waves.coma_x=0.05",
                "filter_slm.pixels_x=256",
                "name=\"bench\"",
            ]),
        )
        .unwrap();
        assert_eq!(m.lens2.focal_length_m, 0.2);
        assert_eq!(m.lens1.focal_length_m, 1.0);
        assert_eq!(m.pupil.radius_m, Some(1e-3));
        assert_eq!(m.pupil.zernike_waves.coma_x, 0.05);
        assert_eq!(m.filter_slm.pixels_x, Some(256));
        assert_eq!(m.name, "bench");
        // A bare word is a string.
        assert_eq!(load_machine("ideal", &sets(&["name=bench2"])).unwrap().name, "bench2");
    }

    #[test]
    fn files_load_with_their_stem_as_name() {
        let dir = crate::test_dir("machine-file");
        let p = dir.join("bench.toml");
        let mut cfg = presets::machine("ideal").unwrap();
        cfg.pupil.radius_m = Some(2e-3);
        let mut text = toml::to_string(&cfg).unwrap();
        text = text.replace("name = \"ideal\"\n", "");
        std::fs::write(&p, text).unwrap();
        let m = load_machine(p.to_str().unwrap(), &sets(&["misalignment.input_defocus_m=1e-4"])).unwrap();
        assert_eq!(m.name, "bench");
        assert_eq!(m.pupil.radius_m, Some(2e-3));
        assert_eq!(m.misalignment.input_defocus_m, 1e-4);
        // A set may fill a required key the file lacks.
        std::fs::write(
            &p,
            toml::to_string(&cfg)
                .unwrap()
                .replace("[laser]\nwavelength_m = 5.32e-7\n", ""),
        )
        .unwrap();
        let m = load_machine(p.to_str().unwrap(), &sets(&["laser.wavelength_m=633e-9"])).unwrap();
        assert_eq!(m.wavelength_m(), 633e-9);
    }

    #[test]
    fn unknown_preset_lists_presets() {
        let e = err("idael", &[]);
        assert!(
            e.contains("`idael`") && e.contains("ideal, ideal-128, ideal-2k") && e.contains(".toml"),
            "{e}"
        );
    }

    #[test]
    fn file_errors_name_file_and_line() {
        let dir = crate::test_dir("machine-file-err");
        let missing = dir.join("missing.toml");
        let e = err(missing.to_str().unwrap(), &[]);
        assert!(e.contains("missing.toml") && e.contains("not found"), "{e}");

        let p = dir.join("syntax.toml");
        std::fs::write(&p, "[laser]\nwavelength_m = 532e-9\n[input_slm\npixels_x = 512\n").unwrap();
        let e = err(p.to_str().unwrap(), &[]);
        assert!(e.contains("syntax.toml: line 3:"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");

        let mut text = toml::to_string(&presets::machine("ideal").unwrap()).unwrap();
        text = text.replace("[lens1]\nfocal_length_m", "[lens1]\nfocal_length");
        let p = dir.join("unknown.toml");
        std::fs::write(&p, &text).unwrap();
        let line = text.lines().position(|l| l.starts_with("focal_length =")).unwrap() + 1;
        let e = err(p.to_str().unwrap(), &[]);
        assert!(e.contains(&format!("unknown.toml: line {line}:")), "{e}");
        assert!(e.contains("`focal_length`") && e.contains("`focal_length_m`"), "{e}");
    }

    #[test]
    fn set_errors_name_the_set() {
        let e = err("ideal", &["pupil.radius=1e-3"]);
        assert!(
            e.contains("`--set pupil.radius=1e-3`") && e.contains("`radius_m`"),
            "{e}"
        );
        let e = err("ideal", &["lens3.focal_length_m=0.1"]);
        assert!(
            e.contains("--set lens3.focal_length_m=0.1") && e.contains("`lens3`"),
            "{e}"
        );
        let e = err("ideal", &["lens1.focal_length_m"]);
        assert!(
            e.contains("`--set lens1.focal_length_m`") && e.contains("path=value"),
            "{e}"
        );
        let e = err("ideal", &["=3"]);
        assert!(e.contains("path=value"), "{e}");
        let e = err("ideal", &["laser.wavelength_m.x=1"]);
        assert!(e.contains("`laser.wavelength_m` is a value"), "{e}");
        let e = err("ideal", &["lens1.focal_length_m=0.1", "input_slm.pixels_x=abc"]);
        assert!(e.contains("--set input_slm.pixels_x=abc") && e.contains("abc"), "{e}");
    }

    #[test]
    fn invalid_values_say_what_is_valid() {
        let e = err("ideal", &["input_slm.pitch_m=-1"]);
        assert!(e.contains("`input_slm.pitch_m`") && e.contains("> 0"), "{e}");
        let e = err("ideal", &["input_slm.pixels_x=511"]);
        assert!(e.contains("`input_slm.pixels_x`") && e.contains("even"), "{e}");
    }
}
