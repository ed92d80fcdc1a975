//! Softmax over the last axis, stabilised by subtracting each row's maximum
//! (so `exp` never overflows and the largest term is exactly 1).

use ndarray::{Array, ArrayBase, Axis, Data, DataMut, Dimension};

/// Replaces every lane along the last axis of `x` by its softmax.
///
/// A lane whose maximum is `+∞` or NaN yields NaN; a lane of all `−∞` is NaN too
/// (there is no distribution to return).
///
/// # Panics
/// If `x` is zero-dimensional.
pub fn softmax_in_place<S, D>(x: &mut ArrayBase<S, D>)
where
    S: DataMut<Elem = f32>,
    D: Dimension,
{
    assert!(
        x.ndim() > 0,
        "softmax: needs at least one axis, got shape {:?}",
        x.shape()
    );
    let last = Axis(x.ndim() - 1);
    for mut lane in x.lanes_mut(last) {
        let max = lane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        lane.mapv_inplace(|v| {
            let e = (v - max).exp();
            sum += e;
            e
        });
        let inv = 1.0 / sum;
        lane.mapv_inplace(|e| e * inv);
    }
}

/// The softmax of `x` over its last axis.
///
/// # Panics
/// If `x` is zero-dimensional.
pub fn softmax<S, D>(x: &ArrayBase<S, D>) -> Array<f32, D>
where
    S: Data<Elem = f32>,
    D: Dimension,
{
    let mut y = x.to_owned();
    softmax_in_place(&mut y);
    y
}
