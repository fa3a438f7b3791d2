//! Test support shared by the kernel tests: the golden cases of `shared/golden`, a tolerance
//! comparison that names the failing `(n, c, y, x)`, deterministic random data and the named
//! edge-case set every kernel is checked on.
//!
//! Everything here panics with a descriptive message instead of returning errors: it runs only
//! inside tests.

use conv_runtime::{reference, Activation, Conv2dParams, Result, SeparableParams};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// Golden cases
// ---------------------------------------------------------------------------------------------

/// Environment variable that overrides where the golden cases are read from.
pub const GOLDEN_DIR_ENV: &str = "CONV_GOLDEN_DIR";

/// The golden directory: `$CONV_GOLDEN_DIR` if set, else `shared/golden` beside the repository
/// (`<repo>/../shared/golden`, as on the developer machines and in CI).
pub fn golden_dir() -> PathBuf {
    match std::env::var_os(GOLDEN_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/golden")),
    }
}

/// One single-layer golden case (kinds `grouped`, `depthwise`, `pointwise`).
#[derive(Clone, Debug)]
pub struct GoldenCase {
    /// Folder name, e.g. `dw_k3_s2_p1`.
    pub name: String,
    /// `grouped`, `depthwise` or `pointwise` (from `meta.json`).
    pub kind: String,
    pub params: Conv2dParams,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    /// `(n, in, h, w)`.
    pub input: Vec<f32>,
    /// `(out, in / groups, kh, kw)`.
    pub weight: Vec<f32>,
    /// `(out)`, when the case has `bias.f32`.
    pub bias: Option<Vec<f32>>,
    /// ONNX Runtime's output, `(n, out, h_out, w_out)`.
    pub output: Vec<f32>,
    /// The float64 direct convolution, same shape.
    pub output_f64: Vec<f64>,
    /// Per-element absolute tolerance, same shape.
    pub tol: Vec<f32>,
}

impl GoldenCase {
    /// The bias as the kernels take it.
    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// `[n, out, h_out, w_out]`.
    pub fn out_dims(&self) -> [usize; 4] {
        let (ho, wo) = self.params.output_hw(self.h, self.w).unwrap();
        [self.n, self.params.out_channels, ho, wo]
    }
}

/// One separable golden case: depthwise `k x k` conv with bias (`groups = c_in`), then a 1x1 conv
/// `c_in -> c_out` with bias, no activation between.
#[derive(Clone, Debug)]
pub struct SeparableCase {
    pub name: String,
    /// The depthwise stage.
    pub dw_params: Conv2dParams,
    /// The pointwise stage.
    pub pw_params: Conv2dParams,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub input: Vec<f32>,
    pub dw_weight: Vec<f32>,
    pub dw_bias: Vec<f32>,
    pub pw_weight: Vec<f32>,
    pub pw_bias: Vec<f32>,
    pub output: Vec<f32>,
    pub output_f64: Vec<f64>,
    pub tol: Vec<f32>,
}

impl SeparableCase {
    /// `[n, c_out, h_out, w_out]`.
    pub fn out_dims(&self) -> [usize; 4] {
        let (ho, wo) = self.dw_params.output_hw(self.h, self.w).unwrap();
        [self.n, self.pw_params.out_channels, ho, wo]
    }
}

/// Every single-layer golden case, sorted by name. Panics when the golden directory is missing,
/// empty or malformed: a test that cannot see its data must fail, not pass vacuously.
pub fn golden_cases() -> Vec<GoldenCase> {
    load_all().0
}

/// Every separable golden case, sorted by name (same panics as [`golden_cases`]).
pub fn separable_cases() -> Vec<SeparableCase> {
    load_all().1
}

fn load_all() -> (Vec<GoldenCase>, Vec<SeparableCase>) {
    let dir = golden_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "golden directory {} is not readable ({e}); set {GOLDEN_DIR_ENV} to its path",
            dir.display()
        )
    });
    let mut folders: Vec<PathBuf> = entries
        .map(|e| e.expect("reading the golden directory").path())
        .filter(|p| p.join("meta.json").is_file())
        .collect();
    folders.sort();
    assert!(
        !folders.is_empty(),
        "golden directory {} holds no case (no */meta.json)",
        dir.display()
    );
    let mut single = Vec::new();
    let mut separable = Vec::new();
    for folder in folders {
        match load_case(&folder) {
            Loaded::Single(c) => single.push(c),
            Loaded::Separable(c) => separable.push(c),
        }
    }
    (single, separable)
}

enum Loaded {
    Single(GoldenCase),
    Separable(SeparableCase),
}

/// The `shape` fields of `meta.json`.
struct Shape {
    kind: String,
    n: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: (usize, usize),
    stride: (usize, usize),
    pad: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
}

fn load_case(folder: &Path) -> Loaded {
    let name = folder
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let meta_path = folder.join("meta.json");
    let meta = std::fs::read_to_string(&meta_path)
        .unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
    let shape = parse_shape(&meta).unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
    let base = |c_in, c_out, k: (usize, usize), groups, bias| {
        let mut p = Conv2dParams::new(c_in, c_out, 1)
            .groups(groups)
            .with_bias(bias);
        (p.kernel_h, p.kernel_w) = k;
        (p.stride_h, p.stride_w) = shape.stride;
        (p.pad_top, p.pad_bottom) = (shape.pad.0, shape.pad.0);
        (p.pad_left, p.pad_right) = (shape.pad.1, shape.pad.1);
        (p.dilation_h, p.dilation_w) = shape.dilation;
        p
    };
    let (n, h, w) = (shape.n, shape.h, shape.w);
    let input = read_f32(folder, "input.f32");
    let output = read_f32(folder, "output.f32");
    let output_f64 = read_f64(folder, "output_f64.f64");
    let tol = read_f32(folder, "tol.f32");

    if shape.kind == "separable" {
        let dw_params = base(shape.c_in, shape.c_in, shape.k, shape.c_in, true);
        let pw_params = Conv2dParams::new(shape.c_in, shape.c_out, 1);
        let case = SeparableCase {
            name,
            dw_params,
            pw_params,
            n,
            h,
            w,
            input,
            dw_weight: read_f32(folder, "dw_weight.f32"),
            dw_bias: read_f32(folder, "dw_bias.f32"),
            pw_weight: read_f32(folder, "pw_weight.f32"),
            pw_bias: read_f32(folder, "pw_bias.f32"),
            output,
            output_f64,
            tol,
        };
        let out_len = case.out_dims().iter().product();
        check_len(
            &case.name,
            "input.f32",
            case.input.len(),
            dw_params.input_len(n, h, w).unwrap(),
        );
        check_len(
            &case.name,
            "dw_weight.f32",
            case.dw_weight.len(),
            dw_params.weight_len(),
        );
        check_len(&case.name, "dw_bias.f32", case.dw_bias.len(), shape.c_in);
        check_len(
            &case.name,
            "pw_weight.f32",
            case.pw_weight.len(),
            pw_params.weight_len(),
        );
        check_len(&case.name, "pw_bias.f32", case.pw_bias.len(), shape.c_out);
        check_outputs(
            &case.name,
            &case.output,
            &case.output_f64,
            &case.tol,
            out_len,
        );
        return Loaded::Separable(case);
    }

    let bias = folder
        .join("bias.f32")
        .is_file()
        .then(|| read_f32(folder, "bias.f32"));
    let params = base(
        shape.c_in,
        shape.c_out,
        shape.k,
        shape.groups,
        bias.is_some(),
    );
    params
        .validate()
        .unwrap_or_else(|e| panic!("golden case {name}: {e}"));
    let case = GoldenCase {
        name,
        kind: shape.kind,
        params,
        n,
        h,
        w,
        input,
        weight: read_f32(folder, "weight.f32"),
        bias,
        output,
        output_f64,
        tol,
    };
    let out_len = case.out_dims().iter().product();
    check_len(
        &case.name,
        "input.f32",
        case.input.len(),
        params.input_len(n, h, w).unwrap(),
    );
    check_len(
        &case.name,
        "weight.f32",
        case.weight.len(),
        params.weight_len(),
    );
    if let Some(b) = &case.bias {
        check_len(&case.name, "bias.f32", b.len(), params.out_channels);
    }
    check_outputs(
        &case.name,
        &case.output,
        &case.output_f64,
        &case.tol,
        out_len,
    );
    Loaded::Single(case)
}

fn check_len(case: &str, file: &str, actual: usize, expected: usize) {
    assert_eq!(
        actual, expected,
        "golden case {case}: {file} has {actual} values, its meta.json implies {expected}"
    );
}

fn check_outputs(case: &str, output: &[f32], output_f64: &[f64], tol: &[f32], len: usize) {
    check_len(case, "output.f32", output.len(), len);
    check_len(case, "output_f64.f64", output_f64.len(), len);
    check_len(case, "tol.f32", tol.len(), len);
}

fn read_bytes(folder: &Path, file: &str, width: usize) -> Vec<u8> {
    let path = folder.join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.chunks_exact(width).remainder().is_empty(),
        "{}: {} bytes is not a whole number of {width}-byte values",
        path.display(),
        bytes.len()
    );
    bytes
}

/// A raw little-endian `f32` file.
pub fn read_f32(folder: &Path, file: &str) -> Vec<f32> {
    read_bytes(folder, file, 4)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// A raw little-endian `f64` file.
pub fn read_f64(folder: &Path, file: &str) -> Vec<f64> {
    read_bytes(folder, file, 8)
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        .collect()
}

// --- a minimal reader for the `shape` object of meta.json (no serde in this workspace) ---

fn parse_shape(meta: &str) -> Result<Shape, String> {
    let start = meta.find("\"shape\"").ok_or("no \"shape\" object")?;
    let rest = &meta[start..];
    let open = rest.find('{').ok_or("\"shape\" is not an object")?;
    let close = rest[open..]
        .find('}')
        .ok_or("unterminated \"shape\" object")?;
    let obj = &rest[open + 1..open + close];
    let kind = raw_field(obj, "kind")?.trim_matches('"').to_string();
    let pair =
        |key: &str| -> Result<(usize, usize), String> { parse_pair(key, raw_field(obj, key)?) };
    let one = |key: &str| -> Result<usize, String> {
        let (a, b) = pair(key)?;
        if a == b {
            Ok(a)
        } else {
            Err(format!("`{key}` must be a single number"))
        }
    };
    Ok(Shape {
        kind,
        n: one("n")?,
        c_in: one("c_in")?,
        c_out: one("c_out")?,
        h: one("h")?,
        w: one("w")?,
        k: pair("k")?,
        stride: pair("stride")?,
        pad: pair("pad")?,
        dilation: pair("dilation")?,
        groups: one("groups")?,
    })
}

/// The raw text of `"key": value` in a flat JSON object (a string, a number or a `[..]` list).
fn raw_field<'a>(obj: &'a str, key: &str) -> Result<&'a str, String> {
    let quoted = format!("\"{key}\"");
    let at = obj
        .find(&quoted)
        .ok_or_else(|| format!("no `{key}` in \"shape\""))?;
    let after = obj[at + quoted.len()..].trim_start();
    let value = after
        .strip_prefix(':')
        .ok_or_else(|| format!("`{key}` is not followed by `:`"))?
        .trim_start();
    let end = if value.starts_with('[') {
        value.find(']').map(|i| i + 1)
    } else if let Some(s) = value.strip_prefix('"') {
        s.find('"').map(|i| i + 2)
    } else {
        Some(value.find([',', '\n', '}']).unwrap_or(value.len()))
    };
    let end = end.ok_or_else(|| format!("unterminated value of `{key}`"))?;
    Ok(value[..end].trim())
}

/// `3` -> `(3, 3)`; `[3, 5]` -> `(3, 5)` (height, width).
fn parse_pair(key: &str, raw: &str) -> Result<(usize, usize), String> {
    let num = |s: &str| {
        s.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{key}`: `{raw}` is not a non-negative integer or [h, w] pair"))
    };
    match raw.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        Some(list) => {
            let items: Vec<&str> = list.split(',').collect();
            match items.as_slice() {
                [a, b] => Ok((num(a)?, num(b)?)),
                [a] => num(a).map(|v| (v, v)),
                _ => Err(format!("`{key}`: `{raw}` is not a [h, w] pair")),
            }
        }
        None => num(raw).map(|v| (v, v)),
    }
}

// ---------------------------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------------------------

/// `(n, c, y, x)` of flat index `i` in an NCHW tensor of `dims`.
pub fn coords(i: usize, dims: [usize; 4]) -> (usize, usize, usize, usize) {
    let [_, c, h, w] = dims;
    (i / (c * h * w), i / (h * w) % c, i / w % h, i % w)
}

/// Asserts `|got - want| <= tol` element-wise (NaN matches only NaN, infinities only
/// themselves). On failure panics with `what`, the number of failing elements, the first failing
/// `(n, c, y, x)` with its values, and the worst error in units of its tolerance.
pub fn assert_close<W: Copy + Into<f64>>(
    what: &str,
    got: &[f32],
    want: &[W],
    tol: &[f32],
    dims: [usize; 4],
) {
    let len = dims.iter().product::<usize>();
    assert!(
        got.len() == len && want.len() == len && tol.len() == len,
        "{what}: lengths got {}, want {}, tol {} do not match dims {dims:?} ({len})",
        got.len(),
        want.len(),
        tol.len()
    );
    let mut failures = 0usize;
    let mut first = None;
    let mut worst = (0.0f64, 0usize);
    for (i, ((&g, &wv), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        let (g, wv, t) = (g as f64, wv.into(), t as f64);
        let ok = if wv.is_nan() {
            g.is_nan()
        } else {
            g == wv || (g - wv).abs() <= t
        };
        if !ok {
            failures += 1;
            first.get_or_insert(i);
        }
        let ratio = if t > 0.0 {
            (g - wv).abs() / t
        } else {
            f64::INFINITY
        };
        if !ok && (ratio > worst.0 || ratio.is_nan()) {
            worst = (ratio, i);
        }
    }
    if let Some(i) = first {
        let mut msg =
            format!("{what}: {failures} of {len} elements out of tolerance (dims {dims:?})");
        for (label, i) in [("first", i), ("worst", worst.1)] {
            let (g, wv, t) = (got[i] as f64, want[i].into(), tol[i] as f64);
            let _ = write!(
                msg,
                "\n  {label} at (n, c, y, x) = {:?}: got {g:e}, want {wv:e}, |err| {:e}, tol {t:e} (err/tol {:.3})",
                coords(i, dims),
                (g - wv).abs(),
                (g - wv).abs() / t
            );
        }
        panic!("{msg}");
    }
}

/// Parts a threaded check splits every pass into: an even and an odd count, and more parts
/// than the pool (of [`POOL_THREADS`] threads) or the global pool has threads.
pub const PARTS: [usize; 3] = [2, 3, 5];
/// Threads of the pool the threaded checks run on.
pub const POOL_THREADS: usize = 3;

/// The pool the threaded checks run on (built once per test binary).
pub fn pool() -> &'static rayon::ThreadPool {
    static POOL: std::sync::OnceLock<rayon::ThreadPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(POOL_THREADS)
            .build()
            .expect("rayon pool")
    })
}

/// Runs `layer` on `isa` as each of [`PARTS`] parts, on [`pool`] (from one of its workers,
/// inside `install`) and from the calling thread (outside any pool: the calling thread computes
/// a part itself and hands the others to rayon's global pool), and checks every result against
/// the reference (`want`, `tol`) and, bit for bit, against `serial` (the one-thread output):
/// each output float is computed the same way by exactly one part, so the thread count must not
/// change any bit, NaN included.
#[allow(clippy::too_many_arguments)]
pub fn assert_parts_match<W: Copy + Into<f64>, L: conv_runtime::Layer + ?Sized>(
    what: &str,
    layer: &L,
    isa: conv_runtime::Isa,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    serial: &[f32],
    want: &[W],
    tol: &[f32],
    dims: [usize; 4],
) {
    for parts in PARTS {
        for inside in [true, false] {
            let mut out = vec![f32::NAN; serial.len()];
            let mut call = || layer.forward_split_on(isa, parts, input, n, h, w, &mut out);
            let done = if inside { pool().install(call) } else { call() };
            let what = format!(
                "{what} in {parts} parts ({})",
                if inside { "in a pool" } else { "from outside" }
            );
            done.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_close(&what, &out, want, tol, dims);
            assert_same_bits(&what, &out, serial, dims);
        }
    }
}

/// Panics unless `got` and `serial` are equal bit for bit (NaN payloads included).
pub fn assert_same_bits(what: &str, got: &[f32], serial: &[f32], dims: [usize; 4]) {
    let differ = got
        .iter()
        .zip(serial)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    if let Some(i) = differ {
        panic!(
            "{what}: differs from one thread at (n, c, y, x) = {:?}: {:e} vs {:e}",
            coords(i, dims),
            got[i],
            serial[i]
        );
    }
}

/// The largest `|got - want| / tol` (0 when all are exact), for reporting margins.
pub fn max_err_over_tol<W: Copy + Into<f64>>(got: &[f32], want: &[W], tol: &[f32]) -> f64 {
    got.iter()
        .zip(want)
        .zip(tol)
        .map(|((&g, &w), &t)| ((g as f64) - w.into()).abs() / (t as f64))
        .filter(|r| !r.is_nan())
        .fold(0.0, f64::max)
}

// ---------------------------------------------------------------------------------------------
// Random data
// ---------------------------------------------------------------------------------------------

/// `len` values uniform in `[-1, 1)`, deterministic in `seed` (SplitMix64; every value is a
/// multiple of `2^-23`, so it is exact in `f32`).
pub fn random_vec(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let unit = (z >> 40) as f32 / (1u64 << 24) as f32; // [0, 1)
            2.0 * unit - 1.0
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The edge-case set
// ---------------------------------------------------------------------------------------------

/// One named layer and input size of the edge-case set.
#[derive(Clone, Copy, Debug)]
pub struct EdgeCase {
    /// Kebab-case name stating what it covers, used in failure messages.
    pub name: &'static str,
    pub params: Conv2dParams,
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

/// Random input, weight and bias for an edge case.
pub struct EdgeData {
    pub input: Vec<f32>,
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

impl EdgeCase {
    /// Deterministic random data for this case.
    pub fn data(&self, seed: u64) -> EdgeData {
        let p = &self.params;
        EdgeData {
            input: random_vec(p.input_len(self.n, self.h, self.w).unwrap(), seed),
            weight: random_vec(p.weight_len(), seed ^ 0x5157),
            bias: p.bias.then(|| random_vec(p.out_channels, seed ^ 0xB1A5)),
        }
    }

    /// `[n, out, h_out, w_out]`.
    pub fn out_dims(&self) -> [usize; 4] {
        let (ho, wo) = self.params.output_hw(self.h, self.w).unwrap();
        [self.n, self.params.out_channels, ho, wo]
    }
}

/// The named edge-case set every kernel is checked on: widths that are not whole vectors, planes
/// smaller than the kernel, batches, odd channel counts, strides 2 and 3, dilation, asymmetric
/// padding, rectangular kernels, depthwise multipliers and groups.
pub fn edge_cases() -> Vec<EdgeCase> {
    let e = |name, params, n, h, w| EdgeCase {
        name,
        params,
        n,
        h,
        w,
    };
    let asym = {
        let mut p = Conv2dParams::new(4, 4, 3).groups(4);
        (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) = (2, 0, 0, 1);
        p
    };
    let rect = {
        let mut p = Conv2dParams::new(3, 5, 3);
        p.kernel_w = 5;
        (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) = (1, 1, 2, 2);
        p
    };
    let rect_strided = {
        let mut p = Conv2dParams::new(2, 4, 5).groups(2);
        p.kernel_h = 3;
        (p.stride_h, p.stride_w) = (1, 2);
        (p.dilation_h, p.dilation_w) = (2, 1);
        (p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) = (1, 3, 0, 2);
        p
    };
    let huge_stride = {
        // Stride and padding far larger than the data: the generic kernel's fallback path.
        Conv2dParams::new(2, 3, 1)
            .stride(3000)
            .pad(3000)
            .with_bias(false)
    };
    let sparse = {
        // 1x3 taps 1000 columns apart, stride 2500, asymmetric padding: phase rows would be far
        // longer than the data, so the generic kernel gathers per tap on wide vectors.
        let mut p = Conv2dParams::new(2, 4, 3).groups(2);
        (p.kernel_h, p.stride_w, p.dilation_w) = (1, 2500, 1000);
        (p.pad_left, p.pad_right) = (1700, 900);
        p
    };
    vec![
        e(
            "dw3x3-w13-not-a-vector",
            Conv2dParams::new(5, 5, 3).groups(5).pad(1),
            1,
            7,
            13,
        ),
        e(
            "dw3x3-w17-one-past-16",
            Conv2dParams::new(3, 3, 3).groups(3).pad(1),
            1,
            5,
            17,
        ),
        e(
            "dw3x3-w9-one-past-8",
            Conv2dParams::new(3, 3, 3).groups(3).pad(1),
            1,
            4,
            9,
        ),
        e(
            "dw3x3-w37-wide",
            Conv2dParams::new(2, 2, 3).groups(2).pad(1),
            1,
            3,
            37,
        ),
        e(
            "dw3x3-1x1-input-pad1",
            Conv2dParams::new(2, 2, 3).groups(2).pad(1),
            1,
            1,
            1,
        ),
        e(
            "dw5x5-2x3-input-pad2",
            Conv2dParams::new(3, 3, 5).groups(3).pad(2),
            1,
            2,
            3,
        ),
        e(
            "dense3x3-h2w2-pad1",
            Conv2dParams::new(3, 4, 3).pad(1),
            2,
            2,
            2,
        ),
        e(
            "dw3x3-batch3",
            Conv2dParams::new(4, 4, 3).groups(4).pad(1),
            3,
            6,
            10,
        ),
        e(
            "dense3x3-odd-channels-7-to-5",
            Conv2dParams::new(7, 5, 3).pad(1),
            1,
            6,
            11,
        ),
        e(
            "pw-odd-channels-9-to-13",
            Conv2dParams::new(9, 13, 1),
            2,
            5,
            7,
        ),
        e(
            "dw3x3-stride2-pad1",
            Conv2dParams::new(6, 6, 3).groups(6).stride(2).pad(1),
            1,
            11,
            17,
        ),
        e(
            "dw3x3-stride2-pad0-even",
            Conv2dParams::new(4, 4, 3).groups(4).stride(2),
            1,
            12,
            12,
        ),
        e(
            "dense3x3-stride3",
            Conv2dParams::new(3, 4, 3).stride(3).pad(1),
            1,
            13,
            20,
        ),
        e(
            "dw5x5-stride3-pad2",
            Conv2dParams::new(2, 2, 5).groups(2).stride(3).pad(2),
            1,
            16,
            35,
        ),
        e("pw-stride2", Conv2dParams::new(8, 6, 1).stride(2), 1, 9, 19),
        e(
            "dw3x3-dilation2-pad2",
            Conv2dParams::new(4, 4, 3).groups(4).dilation(2).pad(2),
            1,
            12,
            21,
        ),
        e(
            "g2-3x3-dilation2-pad0",
            Conv2dParams::new(6, 4, 3).groups(2).dilation(2),
            1,
            13,
            13,
        ),
        e(
            "dw3x3-dilation3-stride2",
            Conv2dParams::new(3, 3, 3)
                .groups(3)
                .dilation(3)
                .stride(2)
                .pad(3),
            1,
            14,
            23,
        ),
        e("dw3x3-asymmetric-pad-t2-b0-l0-r1", asym, 1, 8, 19),
        e("dense-rect-3x5-pad-1-2", rect, 1, 9, 18),
        e("g2-rect-3x5-s1x2-d2x1-asym-pad", rect_strided, 2, 10, 21),
        e(
            "dw-multiplier2",
            Conv2dParams::new(4, 8, 3).groups(4).pad(1),
            1,
            9,
            11,
        ),
        e(
            "dw-multiplier3-stride2",
            Conv2dParams::new(3, 9, 3).groups(3).stride(2).pad(1),
            1,
            10,
            10,
        ),
        e(
            "groups3-5x5",
            Conv2dParams::new(9, 6, 5).groups(3).pad(2),
            1,
            11,
            11,
        ),
        e(
            "groups3-3x3-no-bias",
            Conv2dParams::new(6, 9, 3).groups(3).pad(1).with_bias(false),
            2,
            7,
            15,
        ),
        e(
            "dense7x7-stride2-pad3",
            Conv2dParams::new(3, 8, 7).stride(2).pad(3),
            1,
            19,
            21,
        ),
        e(
            "pw-wide-64-channels",
            Conv2dParams::new(64, 24, 1),
            1,
            5,
            33,
        ),
        e(
            "kernel-wider-than-input-pad",
            Conv2dParams::new(2, 2, 5).groups(2).pad(2),
            1,
            3,
            1,
        ),
        e("huge-stride-and-pad", huge_stride, 1, 2, 5),
        e("sparse-taps-huge-stride-dilation", sparse, 1, 2, 2000),
    ]
}

// ---------------------------------------------------------------------------------------------
// Activations and the separable reference
// ---------------------------------------------------------------------------------------------

/// PyTorch's activation of an exact value: a clamp to the activation's bounds, NaN kept
/// (`torch.relu`, `F.relu6`, `torch.clamp` all return NaN for NaN). Written here, in `f64`,
/// independently of the kernels' vector code.
pub fn activate_f64(act: Activation, x: f64) -> f64 {
    let (lo, hi) = act.bounds();
    if x.is_nan() {
        x
    } else {
        x.max(f64::from(lo)).min(f64::from(hi))
    }
}

/// The exact answer of a convolution followed by `act` and its tolerance: the naive `f64`
/// reference, activated. A clamp never moves two values further apart, so the convolution's
/// tolerance still holds.
#[allow(clippy::too_many_arguments)]
pub fn reference_activated(
    p: &Conv2dParams,
    act: Activation,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Result<(Vec<f64>, Vec<f32>)> {
    let mut want = reference::conv2d_f64(p, input, n, h, w, weight, bias)?;
    for v in &mut want {
        *v = activate_f64(act, *v);
    }
    let tol = reference::tolerance(p, input, n, h, w, weight, bias)?;
    Ok((want, tol))
}

/// Operands of a separable layer in PyTorch layouts.
pub struct SeparableWeights<'a> {
    pub dw_weight: &'a [f32],
    pub dw_bias: Option<&'a [f32]>,
    pub pw_weight: &'a [f32],
    pub pw_bias: Option<&'a [f32]>,
}

/// The exact answer of a separable layer and its tolerance, from the naive reference of each
/// stage: the depthwise stage in `f64` (activated), then the pointwise stage in `f64` on its
/// exact output (activated).
///
/// Tolerance: a kernel's depthwise values are within `tol_dw` of the exact ones (the golden
/// bound of that stage), so its pointwise sums are within `sum_c |pw_w[o][c]| * tol_dw[c]` of
/// the sums of exact depthwise values, plus the pointwise stage's own rounding bound (the golden
/// factor of a length-`in` dot product times `|pw_b| + sum_c |pw_w| * |d|`).
pub fn separable_reference(
    sp: &SeparableParams,
    input: &[f32],
    n: usize,
    h: usize,
    w: usize,
    wts: &SeparableWeights<'_>,
) -> Result<(Vec<f64>, Vec<f32>)> {
    let (dw, pw) = (&sp.depthwise, &sp.pointwise);
    let (mid, mid_tol) = reference_activated(
        dw,
        sp.dw_activation,
        input,
        n,
        h,
        w,
        wts.dw_weight,
        wts.dw_bias,
    )?;
    let (ho, wo) = dw.output_hw(h, w)?;
    let (cin, cout, plane) = (sp.in_channels(), sp.out_channels(), ho * wo);
    let factor = reference::tolerance_factor(pw);
    let mut want = vec![0.0f64; n * cout * plane];
    let mut tol = vec![0.0f32; n * cout * plane];
    for b in 0..n {
        for o in 0..cout {
            let bias = wts.pw_bias.map_or(0.0, |bias| f64::from(bias[o]));
            for p in 0..plane {
                let (mut sum, mut abs, mut carried) = (bias, bias.abs(), 0.0f64);
                for c in 0..cin {
                    let wv = f64::from(wts.pw_weight[o * cin + c]);
                    let at = (b * cin + c) * plane + p;
                    sum += wv * mid[at];
                    abs += (wv * mid[at]).abs();
                    carried += wv.abs() * f64::from(mid_tol[at]);
                }
                let at = (b * cout + o) * plane + p;
                want[at] = activate_f64(sp.activation, sum);
                tol[at] = (abs * factor + carried) as f32;
            }
        }
    }
    Ok((want, tol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_reader_accepts_numbers_and_pairs() {
        let meta = r#"{ "shape": { "kind": "grouped", "n": 2, "c_in": 4, "c_out": 8,
            "h": 9, "w": 11, "k": [3, 5], "stride": 2, "pad": [1,2], "groups": 4,
            "dilation": 1, "source": "x" }, "other": {"k": 9} }"#;
        let s = parse_shape(meta).unwrap();
        assert_eq!(s.kind, "grouped");
        assert_eq!(
            (s.n, s.c_in, s.c_out, s.h, s.w, s.groups),
            (2, 4, 8, 9, 11, 4)
        );
        assert_eq!(
            (s.k, s.stride, s.pad, s.dilation),
            ((3, 5), (2, 2), (1, 2), (1, 1))
        );
        assert!(parse_shape(r#"{"shape": {"kind": "x", "n": -1}}"#).is_err());
    }

    #[test]
    fn random_vec_is_deterministic_and_in_range() {
        let a = random_vec(1000, 3);
        assert_eq!(a, random_vec(1000, 3));
        assert_ne!(a, random_vec(1000, 4));
        assert!(a.iter().all(|v| (-1.0..1.0).contains(v)));
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / 1000.0;
        assert!(mean.abs() < 0.1, "mean {mean}");
    }

    #[test]
    fn coords_are_nchw() {
        assert_eq!(coords(0, [2, 3, 4, 5]), (0, 0, 0, 0));
        assert_eq!(coords(60 + 2 * 20 + 3 * 5 + 4, [2, 3, 4, 5]), (1, 2, 3, 4));
    }

    #[test]
    #[should_panic(expected = "first at (n, c, y, x) = (0, 1, 0, 1)")]
    fn assert_close_names_coordinates() {
        let want = [0.0f64, 0.0, 0.0, 1.0];
        assert_close("t", &[0.0, 0.0, 0.0, 1.5], &want, &[0.1; 4], [1, 2, 1, 2]);
    }

    #[test]
    fn assert_close_nan_matches_only_nan() {
        assert_close(
            "t",
            &[f32::NAN, 1.0],
            &[f64::NAN, 1.0],
            &[0.0; 2],
            [1, 1, 1, 2],
        );
        let r = std::panic::catch_unwind(|| {
            assert_close("t", &[f32::NAN], &[1.0f64], &[1.0], [1, 1, 1, 1])
        });
        assert!(r.is_err());
    }
}
