//! Checked NCHW views over flat `f32` slices.
//!
//! A [`TensorRef`] or [`TensorMut`] is a slice plus its four dimensions `[n, c, h, w]`; building
//! one checks that the product of the dimensions fits in `usize` and equals the slice length, so
//! every later index computation is in bounds. Element `(n, c, y, x)` lives at
//! `((n * C + c) * H + y) * W + x`.

use crate::error::{ConvError, Result};

/// `n * c * h * w`, or [`ConvError::Overflow`].
fn checked_len(dims: [usize; 4]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or(ConvError::Overflow)
}

/// Checks `len` against `dims`.
fn check_dims(len: usize, dims: [usize; 4]) -> Result<()> {
    let expected = checked_len(dims)?;
    if len != expected {
        return Err(ConvError::SliceLength {
            what: "tensor",
            expected,
            actual: len,
        });
    }
    Ok(())
}

/// Flat index of `(n, c, y, x)` in a tensor of `dims`, or `None` when out of bounds.
fn flat_index(dims: [usize; 4], n: usize, c: usize, y: usize, x: usize) -> Option<usize> {
    let [dn, dc, dh, dw] = dims;
    if n >= dn || c >= dc || y >= dh || x >= dw {
        return None;
    }
    // In bounds on every axis and the total length fits in usize (checked at construction), so
    // none of these products or sums can overflow.
    Some(((n * dc + c) * dh + y) * dw + x)
}

/// A read-only NCHW view over `&[f32]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorRef<'a> {
    data: &'a [f32],
    dims: [usize; 4],
}

impl<'a> TensorRef<'a> {
    /// Views `data` as an `[n, c, h, w]` tensor.
    ///
    /// Fails with [`ConvError::Overflow`] when `n * c * h * w` overflows `usize`, and with
    /// [`ConvError::SliceLength`] (`what = "tensor"`) when it differs from `data.len()`.
    pub fn new(data: &'a [f32], dims: [usize; 4]) -> Result<Self> {
        check_dims(data.len(), dims)?;
        Ok(TensorRef { data, dims })
    }

    /// The whole tensor as a flat slice, NCHW order.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// Batch size.
    pub fn n(&self) -> usize {
        self.dims[0]
    }

    /// Channels.
    pub fn c(&self) -> usize {
        self.dims[1]
    }

    /// Height.
    pub fn h(&self) -> usize {
        self.dims[2]
    }

    /// Width.
    pub fn w(&self) -> usize {
        self.dims[3]
    }

    /// Flat index of `(n, c, y, x)`, or `None` when out of bounds.
    pub fn index(&self, n: usize, c: usize, y: usize, x: usize) -> Option<usize> {
        flat_index(self.dims, n, c, y, x)
    }

    /// Element `(n, c, y, x)`, or `None` when out of bounds.
    pub fn get(&self, n: usize, c: usize, y: usize, x: usize) -> Option<f32> {
        self.index(n, c, y, x).map(|i| self.data[i])
    }
}

/// A mutable NCHW view over `&mut [f32]`.
#[derive(Debug, PartialEq)]
pub struct TensorMut<'a> {
    data: &'a mut [f32],
    dims: [usize; 4],
}

impl<'a> TensorMut<'a> {
    /// Views `data` as an `[n, c, h, w]` tensor; the same checks as [`TensorRef::new`].
    pub fn new(data: &'a mut [f32], dims: [usize; 4]) -> Result<Self> {
        check_dims(data.len(), dims)?;
        Ok(TensorMut { data, dims })
    }

    /// The whole tensor as a flat slice, NCHW order.
    pub fn data(&self) -> &[f32] {
        self.data
    }

    /// The whole tensor as a flat mutable slice, NCHW order.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.data
    }

    /// A read-only view of the same tensor.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            data: self.data,
            dims: self.dims,
        }
    }

    /// `[n, c, h, w]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// Batch size.
    pub fn n(&self) -> usize {
        self.dims[0]
    }

    /// Channels.
    pub fn c(&self) -> usize {
        self.dims[1]
    }

    /// Height.
    pub fn h(&self) -> usize {
        self.dims[2]
    }

    /// Width.
    pub fn w(&self) -> usize {
        self.dims[3]
    }

    /// Flat index of `(n, c, y, x)`, or `None` when out of bounds.
    pub fn index(&self, n: usize, c: usize, y: usize, x: usize) -> Option<usize> {
        flat_index(self.dims, n, c, y, x)
    }

    /// Element `(n, c, y, x)`, or `None` when out of bounds.
    pub fn get(&self, n: usize, c: usize, y: usize, x: usize) -> Option<f32> {
        self.index(n, c, y, x).map(|i| self.data[i])
    }

    /// Mutable element `(n, c, y, x)`, or `None` when out of bounds.
    pub fn get_mut(&mut self, n: usize, c: usize, y: usize, x: usize) -> Option<&mut f32> {
        self.index(n, c, y, x).map(|i| &mut self.data[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_check_length_and_index_nchw() {
        let data: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let t = TensorRef::new(&data, [1, 2, 3, 4]).unwrap();
        assert_eq!(t.get(0, 1, 2, 3), Some(23.0));
        assert_eq!(t.get(0, 1, 0, 1), Some(13.0));
        assert_eq!(t.get(0, 2, 0, 0), None);
        assert_eq!(t.get(1, 0, 0, 0), None);
        assert_eq!(
            TensorRef::new(&data, [1, 2, 3, 5]),
            Err(ConvError::SliceLength {
                what: "tensor",
                expected: 30,
                actual: 24
            })
        );
        assert_eq!(
            TensorRef::new(&data, [usize::MAX, 2, 1, 1]),
            Err(ConvError::Overflow)
        );
        let mut out = vec![0.0f32; 6];
        let mut m = TensorMut::new(&mut out, [1, 1, 2, 3]).unwrap();
        *m.get_mut(0, 0, 1, 2).unwrap() = 5.0;
        assert_eq!(m.view().get(0, 0, 1, 2), Some(5.0));
        assert_eq!(m.data()[5], 5.0);
        assert!(m.get_mut(0, 0, 2, 0).is_none());
    }
}
