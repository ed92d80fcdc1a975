//! What the latency and energy models need beyond the optics: the host link, the
//! pipelining of frames, the electrical power of each device and the electronic
//! co-processor that runs the non-optical ops. The simulation ignores this section;
//! `fourf latency` reads it.
//!
//! Device powers are assumptions unless a preset cites a datasheet: vendors rarely
//! state them, and none of the datasheets were in reach when the presets were
//! written. Override any of them with `--set timing.KEY=VALUE`.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// The `[timing]` section of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimingConfig {
    /// Host → input SLM link, bits/s (default 14.4e9: HDMI 2.0's 18 Gbit/s line
    /// rate less its 8b/10b coding).
    pub link_bits_per_s: f64,
    /// Whether loading, exposure and read-out of consecutive frames overlap
    /// (default true).
    pub pipelined: bool,
    /// Electrical power of the laser, watts (default 20: a diode-pumped
    /// single-frequency laser with its controller; assumed).
    pub laser_power_w: f64,
    /// Electrical power of the input SLM with its driver, watts (default 5; assumed).
    pub input_slm_power_w: f64,
    /// Electrical power of the filter SLM(s) with drivers, watts (default 10 for a
    /// pair; assumed).
    pub filter_slm_power_w: f64,
    /// Electrical power of the camera, watts (default 30; assumed).
    pub camera_power_w: f64,
    /// Co-processor FLOP/s achieved on the electronic ops (default 1e12: a desktop
    /// CPU with vector units; assumed).
    pub coprocessor_flops: f64,
    /// Co-processor memory bandwidth achieved, bytes/s (default 50e9; assumed).
    pub coprocessor_bytes_per_s: f64,
    /// Co-processor fixed cost per op, seconds (default 2e-6).
    pub coprocessor_launch_s: f64,
    /// Co-processor power while busy, watts (default 100; assumed).
    pub coprocessor_power_w: f64,
}

impl Default for TimingConfig {
    fn default() -> Self {
        Self {
            link_bits_per_s: 14.4e9,
            pipelined: true,
            laser_power_w: 20.0,
            input_slm_power_w: 5.0,
            filter_slm_power_w: 10.0,
            camera_power_w: 30.0,
            coprocessor_flops: 1e12,
            coprocessor_bytes_per_s: 50e9,
            coprocessor_launch_s: 2e-6,
            coprocessor_power_w: 100.0,
        }
    }
}

impl TimingConfig {
    /// `Err` naming the first key out of range.
    pub fn validate(&self) -> Result<(), SimError> {
        for (key, v, zero_ok) in [
            ("link_bits_per_s", self.link_bits_per_s, false),
            ("laser_power_w", self.laser_power_w, true),
            ("input_slm_power_w", self.input_slm_power_w, true),
            ("filter_slm_power_w", self.filter_slm_power_w, true),
            ("camera_power_w", self.camera_power_w, true),
            ("coprocessor_flops", self.coprocessor_flops, false),
            ("coprocessor_bytes_per_s", self.coprocessor_bytes_per_s, false),
            ("coprocessor_launch_s", self.coprocessor_launch_s, true),
            ("coprocessor_power_w", self.coprocessor_power_w, true),
        ] {
            let ok = v.is_finite() && (v > 0.0 || (zero_ok && v == 0.0));
            if !ok {
                return Err(SimError::invalid(
                    format!("timing.{key}"),
                    v,
                    if zero_ok {
                        "must be a finite number ≥ 0"
                    } else {
                        "must be a finite number > 0"
                    },
                ));
            }
        }
        Ok(())
    }
}
