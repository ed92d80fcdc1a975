//! Softmax over the last axis, stabilised by subtracting each row's maximum
//! (so `exp` never overflows and the largest term is exactly 1).

use ndarray::{Array, ArrayBase, Axis, Data, DataMut, Dimension};

use super::Real;

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

/// Softmax over the last axis of `[rows, n]` in any [`Real`] type (training path).
pub fn softmax_rows<T: Real>(x: ndarray::ArrayView2<T>) -> ndarray::Array2<T> {
    let mut y = x.to_owned();
    for mut lane in y.rows_mut() {
        let max = lane.iter().copied().fold(T::neg_infinity(), T::max);
        let mut sum = T::zero();
        lane.mapv_inplace(|v| {
            let e = (v - max).exp();
            sum += e;
            e
        });
        let inv = T::one() / sum;
        lane.mapv_inplace(|e| e * inv);
    }
    y
}

/// The backward pass of a softmax over rows: `∂L/∂x = y ⊙ (g − Σⱼ gⱼ yⱼ)` per row,
/// for the softmax output `y` and the upstream gradient `g`.
///
/// # Panics
/// If `y` and `g` differ in shape.
pub fn softmax_backward<T: Real>(y: ndarray::ArrayView2<T>, g: ndarray::ArrayView2<T>) -> ndarray::Array2<T> {
    assert_eq!(y.dim(), g.dim(), "softmax_backward: output vs gradient");
    let mut d = ndarray::Array2::zeros(y.dim());
    for ((yr, gr), mut dr) in y.rows().into_iter().zip(g.rows()).zip(d.rows_mut()) {
        let dot: T = yr.iter().zip(gr).map(|(&a, &b)| a * b).sum();
        for ((d, &yi), &gi) in dr.iter_mut().zip(yr).zip(gr) {
            *d = yi * (gi - dot);
        }
    }
    d
}
