//! The generated layers of the benches' rows behind a C ABI, for `benches/peers/with_ours.py`:
//! it loads this library with ctypes and times our layer as one more peer of
//! `shared/peers/peers.py`, in the same interleaved rounds, with the same per-call timing and
//! the same check against the float64 reference as ONNX Runtime, OpenVINO, XNNPACK and PyTorch.
//!
//! A handle owns the layer built from the caller's PyTorch-layout weights and the shape of the
//! row's call. With more than one thread, a call is `forward_par` from the caller's thread on
//! rayon's global pool (built here with that many threads), the way a program that does not
//! manage pools of its own calls a layer: the calling thread computes one part, the pool the
//! others.

use std::ffi::{c_char, CStr};

use conv_benches::{bench_isa, find_row, Data};
use conv_runtime::{Isa, Layer};

/// One row's generated layer, ready to run.
pub struct Peer {
    layer: Box<dyn Layer>,
    isa: Isa,
    n: usize,
    h: usize,
    w: usize,
    input_len: usize,
    output_len: usize,
    /// 2 or more: the layer runs with `forward_par` on the global pool.
    threads: usize,
    /// The kernel name, NUL-terminated, for the peers' implementation column.
    kernel: Vec<u8>,
}

/// A handle for row `name` (a row of `shapes.tsv`, or of `benches/more-shapes.tsv` with the
/// feature `more-rows`) on `threads` threads, its weights the
/// `count` arrays at `weights` (`[weight, bias]` of a convolution, `[dw_weight, dw_bias,
/// pw_weight, pw_bias]` of a separable row, PyTorch layouts), their lengths in `lens`.
/// Null when the row is unknown or an array has the wrong length.
///
/// # Safety
/// `name` is a NUL-terminated string; `weights` and `lens` point to `count` entries, and each
/// `weights[i]` to `lens[i]` readable floats.
#[no_mangle]
pub unsafe extern "C" fn conv_peer_new(
    name: *const c_char,
    threads: usize,
    weights: *const *const f32,
    lens: *const usize,
    count: usize,
) -> *mut Peer {
    // SAFETY: the caller passes a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) };
    let Some(row) = name.to_str().ok().and_then(find_row) else {
        return core::ptr::null_mut();
    };
    let want: Vec<usize> = row
        .stages()
        .iter()
        .flat_map(|(p, _)| [p.weight_len(), p.out_channels])
        .collect();
    if count != want.len() {
        return core::ptr::null_mut();
    }
    let mut arrays = Vec::with_capacity(count);
    for (i, &len) in want.iter().enumerate() {
        // SAFETY: `i < count`, and the caller passes `count` entries in both arrays.
        let (ptr, got) = unsafe { (*weights.add(i), *lens.add(i)) };
        if got != len || ptr.is_null() {
            return core::ptr::null_mut();
        }
        // SAFETY: the caller passes `lens[i] == len` readable floats at `weights[i]`.
        arrays.push(unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec());
    }
    let data = Data {
        input: conv_benches::Aligned::new(&[]),
        weights: arrays,
        output: conv_benches::Aligned::new(&[]),
    };
    let Ok(layer) = (row.build)(&data) else {
        return core::ptr::null_mut();
    };
    let (n, h, w) = (row.n, row.h, row.w);
    let input_len = n * layer.in_channels() * h * w;
    let Ok(output_len) = layer.output_len(n, h, w) else {
        return core::ptr::null_mut();
    };
    if threads > 1 {
        // The first handle sizes the global pool; later ones must agree with it.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
        if rayon::current_num_threads() != threads {
            return core::ptr::null_mut();
        }
    }
    let mut kernel = layer.kernel_name().as_bytes().to_vec();
    kernel.push(0);
    Box::into_raw(Box::new(Peer {
        layer,
        isa: bench_isa(),
        n,
        h,
        w,
        input_len,
        output_len,
        threads,
        kernel,
    }))
}

/// Runs the layer once: 0 on success, -1 for wrong lengths, -2 when the layer returns an error.
///
/// # Safety
/// `peer` comes from [`conv_peer_new`] and was not freed; `input` points to `input_len`
/// readable floats and `output` to `output_len` writable ones, not overlapping.
#[no_mangle]
pub unsafe extern "C" fn conv_peer_run(
    peer: *const Peer,
    input: *const f32,
    input_len: usize,
    output: *mut f32,
    output_len: usize,
) -> i32 {
    // SAFETY: the caller passes a live handle.
    let p = unsafe { &*peer };
    if input_len != p.input_len || output_len != p.output_len {
        return -1;
    }
    // SAFETY: the caller passes `input_len` readable and `output_len` writable floats that do
    // not overlap.
    let (input, output) = unsafe {
        (
            core::slice::from_raw_parts(input, input_len),
            core::slice::from_raw_parts_mut(output, output_len),
        )
    };
    let done = if p.threads > 1 {
        p.layer.forward_par_on(p.isa, input, p.n, p.h, p.w, output)
    } else {
        p.layer.forward_on(p.isa, input, p.n, p.h, p.w, output)
    };
    if done.is_ok() {
        0
    } else {
        -2
    }
}

/// The layer's kernel name (NUL-terminated, valid until [`conv_peer_free`]).
///
/// # Safety
/// `peer` comes from [`conv_peer_new`] and was not freed.
#[no_mangle]
pub unsafe extern "C" fn conv_peer_kernel(peer: *const Peer) -> *const c_char {
    // SAFETY: the caller passes a live handle.
    unsafe { (*peer).kernel.as_ptr().cast() }
}

/// The input and output lengths (floats) of one call.
///
/// # Safety
/// `peer` comes from [`conv_peer_new`] and was not freed; `lens` points to two writable
/// `usize`.
#[no_mangle]
pub unsafe extern "C" fn conv_peer_lens(peer: *const Peer, lens: *mut usize) {
    // SAFETY: the caller passes a live handle and room for two lengths.
    unsafe {
        *lens = (*peer).input_len;
        *lens.add(1) = (*peer).output_len;
    }
}

/// Frees a handle (null is ignored).
///
/// # Safety
/// `peer` is null or comes from [`conv_peer_new`] and was not freed before.
#[no_mangle]
pub unsafe extern "C" fn conv_peer_free(peer: *mut Peer) {
    if !peer.is_null() {
        // SAFETY: made by `Box::into_raw` in `conv_peer_new`, freed once.
        drop(unsafe { Box::from_raw(peer) });
    }
}
