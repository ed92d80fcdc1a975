//! Named machines. Each preset says where its numbers come from.

use crate::machine::MachineConfig;

/// Names and one-line descriptions of every machine preset.
pub const MACHINES: &[(&str, &str)] = &[
    (
        "ideal",
        "noiseless 512×512 4f machine, 8 µm pixels, 532 nm, f = 100 mm, matched filter",
    ),
    (
        "ideal-2k",
        "noiseless 2048×2048 4f machine, 8 µm pixels, 532 nm, f = 100 mm, matched filter",
    ),
];

/// The machine preset called `name`, if there is one.
pub fn machine(name: &str) -> Option<MachineConfig> {
    // The ideal machines are not a device: they are the reference every real
    // machine is compared with (exact field read-out, no aperture, no noise).
    let mut m = match name {
        "ideal" => MachineConfig::ideal(512),
        "ideal-2k" => MachineConfig::ideal(2048),
        _ => return None,
    };
    m.name = name.to_string();
    Some(m)
}
