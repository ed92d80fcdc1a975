//! AdamW (Loshchilov & Hutter 2019, as PyTorch's `torch.optim.AdamW`) and the
//! learning-rate schedule: linear warm-up, then cosine decay to a floor.
//!
//! One step, per parameter `θ` with gradient `g` at step `t ≥ 1`:
//! `θ ← θ(1 − lr·λ)`, `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ − lr · (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)`.
//! Weight decay `λ` applies to matrices and filters only: not to biases, norms
//! (1-D tensors), the class token or the positional embedding (timm's rule).

use serde::{Deserialize, Serialize};

use crate::layers::LayerError;
use crate::params::Parameters;

fn d_lr() -> f64 {
    1e-3
}
fn d_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn d_eps() -> f64 {
    1e-8
}
fn d_wd() -> f64 {
    0.05
}

/// Settings of [`AdamW`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    /// Peak learning rate (default 1e-3), reached at the end of the warm-up.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// `[β₁, β₂]` (default `[0.9, 0.999]`), each in `[0, 1)`.
    #[serde(default = "d_betas")]
    pub betas: [f64; 2],
    /// `ε` of the denominator (default 1e-8).
    #[serde(default = "d_eps")]
    pub eps: f64,
    /// Decoupled weight decay `λ` (default 0.05).
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: d_lr(),
            betas: d_betas(),
            eps: d_eps(),
            weight_decay: d_wd(),
        }
    }
}

fn invalid(key: &str, value: impl ToString, valid: &str) -> LayerError {
    LayerError::InvalidConfig {
        key: key.into(),
        value: value.to_string(),
        valid: valid.into(),
    }
}

impl AdamWConfig {
    /// `Err` naming the first setting out of range.
    pub fn validate(&self) -> Result<(), LayerError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(invalid("optimizer.lr", self.lr, "must be finite and > 0"));
        }
        for (i, b) in self.betas.iter().enumerate() {
            if !(0.0..1.0).contains(b) {
                return Err(invalid(&format!("optimizer.betas[{i}]"), b, "must be in [0, 1)"));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(invalid("optimizer.eps", self.eps, "must be finite and > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(invalid(
                "optimizer.weight_decay",
                self.weight_decay,
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }
}

/// Whether the parameter `name` of shape `shape` takes weight decay.
pub fn decays(name: &str, shape: &[usize]) -> bool {
    shape.len() >= 2 && !name.ends_with("pos_embed") && !name.ends_with("cls_token")
}

/// AdamW's state: the moments of every parameter in the model's visiting order.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamW {
    /// Settings.
    pub config: AdamWConfig,
    /// Steps taken.
    pub step: u64,
    /// First moments, one per parameter tensor.
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

impl AdamW {
    /// Zero moments for the parameters of `model`.
    pub fn new<P: Parameters + ?Sized>(config: AdamWConfig, model: &mut P) -> Self {
        let mut m = Vec::new();
        model.visit_params("", &mut |_, t| m.push(vec![0.0; t.len()]));
        Self {
            config,
            step: 0,
            v: m.clone(),
            m,
        }
    }

    /// One step on `model` with the gradients `grad` (a model of the same shape)
    /// at learning rate `lr`. The arithmetic is `f32` in a fixed order, so a run
    /// repeats bit for bit.
    ///
    /// # Panics
    /// If `grad` or the moments do not match `model`.
    pub fn update<P: Parameters + Clone>(&mut self, model: &mut P, grad: &P, lr: f64) {
        self.step += 1;
        let t = self.step as i32;
        let [b1, b2] = self.config.betas;
        let c1 = 1.0 - b1.powi(t);
        let c2 = 1.0 - b2.powi(t);
        let (b1, b2) = (b1 as f32, b2 as f32);
        let step_size = (lr / c1) as f32;
        let c2_sqrt = c2.sqrt() as f32;
        let eps = self.config.eps as f32;
        let mut grads = Vec::new();
        grad.clone()
            .visit_params("", &mut |_, g| grads.push(g.iter().copied().collect::<Vec<f32>>()));
        let mut i = 0;
        let (ms, vs) = (&mut self.m, &mut self.v);
        let wd = self.config.weight_decay;
        model.visit_params("", &mut |name, mut p| {
            let decay = if decays(name, p.shape()) {
                (1.0 - lr * wd) as f32
            } else {
                1.0
            };
            let (m, v, g) = (&mut ms[i], &mut vs[i], &grads[i]);
            assert!(
                m.len() == p.len() && g.len() == p.len(),
                "AdamW::update: parameter `{name}` has {} values, moments {}, gradient {}",
                p.len(),
                m.len(),
                g.len()
            );
            for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *p *= decay;
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= step_size * *m / ((*v).sqrt() / c2_sqrt + eps);
            }
            i += 1;
        });
        assert_eq!(
            i,
            self.m.len(),
            "AdamW::update: the model has another number of tensors"
        );
    }
}

fn d_warmup() -> f64 {
    1.0
}
fn d_min_lr() -> f64 {
    1e-5
}

/// Learning-rate schedule: linear warm-up from 0 over `warmup_epochs`, then
/// cosine decay from the optimiser's `lr` to `min_lr` at the last step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Warm-up length in epochs (default 1; may be fractional or 0).
    #[serde(default = "d_warmup")]
    pub warmup_epochs: f64,
    /// Learning rate at the end (default 1e-5).
    #[serde(default = "d_min_lr")]
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            warmup_epochs: d_warmup(),
            min_lr: d_min_lr(),
        }
    }
}

impl ScheduleConfig {
    /// `Err` naming the first setting out of range.
    pub fn validate(&self) -> Result<(), LayerError> {
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return Err(invalid(
                "schedule.warmup_epochs",
                self.warmup_epochs,
                "must be finite and ≥ 0",
            ));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0) {
            return Err(invalid("schedule.min_lr", self.min_lr, "must be finite and ≥ 0"));
        }
        Ok(())
    }

    /// The learning rate of step `step` (0-based) of `total` steps of
    /// `steps_per_epoch` each, peaking at `lr`.
    pub fn lr(&self, lr: f64, step: u64, steps_per_epoch: u64, total: u64) -> f64 {
        let warmup = (self.warmup_epochs * steps_per_epoch as f64).round() as u64;
        if step < warmup {
            return lr * (step + 1) as f64 / warmup as f64;
        }
        let span = total.saturating_sub(warmup).max(1);
        let progress = ((step - warmup) as f64 / span as f64).min(1.0);
        self.min_lr + 0.5 * (lr - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Linear, LinearConfig};
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// One AdamW step against the formula evaluated by hand in f64.
    #[test]
    fn adamw_matches_the_formula() {
        let mut model = LinearConfig::new(2, 1).init(&mut StdRng::seed_from_u64(0)).unwrap();
        let before = model.clone();
        let mut grad: Linear = model.clone();
        grad.weight.assign(&ndarray::arr2(&[[0.5, -2.0]]));
        grad.bias.as_mut().unwrap()[0] = 0.25;
        let cfg = AdamWConfig {
            lr: 0.1,
            betas: [0.9, 0.99],
            eps: 1e-8,
            weight_decay: 0.5,
        };
        let mut opt = AdamW::new(cfg, &mut model);
        opt.update(&mut model, &grad, 0.1);
        // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g| + ε) = ±lr.
        for (j, g) in [0.5f64, -2.0].iter().enumerate() {
            let w = f64::from(before.weight[[0, j]]) * (1.0 - 0.1 * 0.5) - 0.1 * g.signum();
            assert!((f64::from(model.weight[[0, j]]) - w).abs() < 1e-6, "weight {j}");
        }
        // The bias takes no decay.
        let b = f64::from(before.bias.as_ref().unwrap()[0]) - 0.1;
        assert!((f64::from(model.bias.as_ref().unwrap()[0]) - b).abs() < 1e-6);
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = ScheduleConfig {
            warmup_epochs: 1.0,
            min_lr: 1e-5,
        };
        assert!((s.lr(1e-3, 0, 10, 100) - 1e-4).abs() < 1e-12);
        assert!((s.lr(1e-3, 9, 10, 100) - 1e-3).abs() < 1e-12);
        assert!((s.lr(1e-3, 10, 10, 100) - 1e-3).abs() < 1e-12);
        let mid = s.lr(1e-3, 55, 10, 100);
        assert!((mid - (1e-5 + 0.5 * (1e-3 - 1e-5))).abs() < 1e-12, "{mid}");
        assert!((s.lr(1e-3, 100, 10, 100) - 1e-5).abs() < 1e-12);
        assert!(AdamWConfig {
            lr: -1.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(AdamWConfig {
            betas: [0.9, 1.0],
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string()
        .contains("betas[1]"));
    }
}
