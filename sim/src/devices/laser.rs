//! The laser: wavelength, optical power and relative intensity noise (RIN).
//!
//! RIN is quoted as a one-sided power spectral density in dB/Hz (e.g. −140 dB/Hz
//! for a quiet DPSS laser; Coherent and Thorlabs datasheets quote it so). Over an
//! exposure `t` the detection bandwidth is `Δf = 1/(2t)`, so the relative RMS
//! fluctuation of the exposure's energy is `σ = √(10^(RIN/10)·Δf)`. It is common to
//! every pixel of an exposure (one scalar per exposure).

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// Planck constant, J·s (SI 2019, exact).
pub const PLANCK_J_S: f64 = 6.626_070_15e-34;
/// Speed of light in vacuum, m/s (exact).
pub const LIGHT_SPEED_M_S: f64 = 299_792_458.0;

/// The light source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaserConfig {
    /// Vacuum wavelength, metres.
    pub wavelength_m: f64,
    /// Optical power on the input SLM, watts; sets the photon budget when
    /// `camera.full_scale_e` is unset. Unset: no photon budget.
    #[serde(default)]
    pub power_w: Option<f64>,
    /// Relative intensity noise, dB/Hz; unset: none.
    #[serde(default)]
    pub rin_db_per_hz: Option<f64>,
}

impl LaserConfig {
    /// A noiseless laser of `wavelength_m` with no stated power.
    pub fn ideal(wavelength_m: f64) -> Self {
        Self {
            wavelength_m,
            power_w: None,
            rin_db_per_hz: None,
        }
    }

    /// Checks every value; errors name `laser.<key>`.
    pub fn validate(&self) -> Result<(), SimError> {
        let w = self.wavelength_m;
        if !(w.is_finite() && w > 0.0) {
            return Err(SimError::invalid(
                "laser.wavelength_m",
                w,
                "must be a finite number > 0",
            ));
        }
        if let Some(p) = self.power_w {
            if !(p.is_finite() && p > 0.0) {
                return Err(SimError::invalid("laser.power_w", p, "must be a finite number > 0 W"));
            }
        }
        if let Some(r) = self.rin_db_per_hz {
            if !(r.is_finite() && r < 0.0) {
                return Err(SimError::invalid(
                    "laser.rin_db_per_hz",
                    r,
                    "must be a finite negative number of dB/Hz (e.g. -140)",
                ));
            }
        }
        Ok(())
    }

    /// Energy of one photon, joules: `hc/λ`.
    pub fn photon_energy_j(&self) -> f64 {
        PLANCK_J_S * LIGHT_SPEED_M_S / self.wavelength_m
    }

    /// Relative RMS fluctuation of the energy of one exposure of `exposure_s`.
    pub fn rin_sigma(&self, exposure_s: f64) -> f64 {
        self.rin_db_per_hz
            .map_or(0.0, |r| (10f64.powf(r / 10.0) / (2.0 * exposure_s)).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn photon_energy_and_rin() {
        let l = LaserConfig {
            wavelength_m: 532e-9,
            power_w: Some(0.1),
            rin_db_per_hz: Some(-140.0),
        };
        // hc/λ at 532 nm = 3.734e-19 J (2.33 eV).
        assert!((l.photon_energy_j() - 3.734e-19).abs() < 1e-22);
        // −140 dB/Hz over 1/(2·1 ms) = 500 Hz: √(1e-14·500) = 2.24e-6.
        assert!((l.rin_sigma(1e-3) - 2.236e-6).abs() < 1e-9);
        assert!(LaserConfig::ideal(532e-9).rin_sigma(1e-3) == 0.0);
        let mut bad = l.clone();
        bad.rin_db_per_hz = Some(3.0);
        assert!(bad.validate().unwrap_err().to_string().contains("laser.rin_db_per_hz"));
    }
}
