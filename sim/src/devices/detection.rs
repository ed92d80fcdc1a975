//! Detection schemes: how camera intensities become the signed linear result, and
//! what each costs in exposures.
//!
//! - `coherent`: the field itself is read (ideal off-axis holography or a
//!   wavefront sensor); one exposure; noiseless by construction — the reference.
//! - `balanced_homodyne`: two exposures with a uniform reference field `r` in phase
//!   with the read-out, `|r + y|² − |r − y|² = 4|r|·Re y`; each exposure goes
//!   through the camera with its noise.
//! - `intensity`: one exposure of `|y|²` (square law); networks must be trained
//!   for it.
//!
//! Signed inputs on an SLM that cannot show a sign (amplitude or binary) need an
//! encoding, each costing optical passes:
//! - `split`: `x = x⁺ − x⁻`, two passes, results subtracted;
//! - `offset`: `x' = (x + 1)/2 ∈ [0, 1]`, plus one pass of the offset `½` alone,
//!   `y = 2(y' − y_½)`; two passes, half the dynamic range of `split`.
//!
//! A binary SLM (DMD) shows `b`-bit grey levels as `b` bit planes, one pass each,
//! weighted `2^k/(2^b − 1)`.

use serde::{Deserialize, Serialize};

use crate::error::SimError;

/// How the output is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Scheme {
    /// Ideal field read-out (1 exposure).
    #[default]
    Coherent,
    /// Two exposures against a reference field (2 exposures).
    BalancedHomodyne,
    /// Square-law detection of `|y|²` (1 exposure).
    Intensity,
}

/// How signed inputs are shown on an SLM that cannot show a sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignedInputs {
    /// `x⁺` and `x⁻` in two passes.
    #[default]
    Split,
    /// `(x + 1)/2` and the offset alone, two passes.
    Offset,
}

/// The `[detection]` section of a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionConfig {
    /// Detection scheme.
    pub scheme: Scheme,
    /// Encoding of signed inputs on amplitude or binary input SLMs.
    pub signed_inputs: SignedInputs,
    /// Amplitude of the homodyne reference relative to the full-scale output
    /// amplitude (default 1).
    pub reference_amplitude: f64,
    /// The controller divides the programmed filter by the transfer functions of
    /// the SLM and camera pixel apertures (sinc envelopes) so that the read-out is
    /// the exact convolution of the pixel values; without it only their alignment
    /// (linear phase) is corrected and the pixel blur stays (default true).
    pub pixel_compensation: bool,
    /// With `simulation.filter_pixels = "apertures"`: the controller divides each
    /// kernel tap by the filter panel's pixel envelope before programming, so the
    /// light sees the kernel undimmed; the cost is dynamic range — a tap is
    /// boosted by up to `1/sinc(√F/2)` per axis (π/2 ≈ 1.57 at 100 % fill at the
    /// frame's edge, π²/4 ≈ 2.47 at its corner), and the passive scaling divides
    /// the whole filter by the largest transfer that results (default false).
    pub filter_envelope_compensation: bool,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            scheme: Scheme::Coherent,
            signed_inputs: SignedInputs::Split,
            reference_amplitude: 1.0,
            pixel_compensation: true,
            filter_envelope_compensation: false,
        }
    }
}

impl DetectionConfig {
    /// Whether the scheme reads a field's real part (coherent or balanced
    /// homodyne; intensity detection reads `|E|²` only), as a camera in the
    /// Fourier plane must.
    pub fn reads_real_part(&self) -> bool {
        self.scheme != Scheme::Intensity
    }

    /// Checks every value; errors name `detection.<key>`.
    pub fn validate(&self) -> Result<(), SimError> {
        let r = self.reference_amplitude;
        if !(r.is_finite() && r > 0.0) {
            return Err(SimError::invalid(
                "detection.reference_amplitude",
                r,
                "must be a finite number > 0 (relative to the full-scale output amplitude)",
            ));
        }
        Ok(())
    }

    /// Camera exposures per optical pass.
    pub fn exposures_per_pass(&self) -> usize {
        match self.scheme {
            Scheme::BalancedHomodyne => 2,
            Scheme::Coherent | Scheme::Intensity => 1,
        }
    }
}
