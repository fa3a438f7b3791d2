//! Tests of the expansion itself: curated snapshots reviewed like code, no `unsafe` in anything
//! we emit, a bound on expansion size for huge kernels, and the `CONV_KERNEL_DUMP` file.
//!
//! Snapshots live in `conv-macros/tests/snapshots/<name>.rs`; regenerate them with
//! `UPDATE_SNAPSHOTS=1 cargo test -p conv-macros` and review the diff.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use proc_macro2::{TokenStream, TokenTree};
use quote::quote;

use super::dump;

/// `CONV_KERNEL_DUMP` is process-global and `expand` reads it, so every test here that expands
/// (or touches the variable) holds this lock: a dump test never sees, nor causes, a stray dump.
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the `()` it guards cannot be left inconsistent.
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// `super::expand` under the env lock.
fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let _env = env_lock();
    super::expand(attr, item)
}

/// The curated snapshots: `(file name, attribute, item)`. Each shows one plan shape a reviewer
/// should see: row-shared depthwise tiles with hoisted weights (MobileNet 3x3), stride phases,
/// grouped channels (ResNeXt, 4 per group), Winograd F(2x2, 3x3) (ResNeXt, 16 per group), a GEMM (MobileNet pointwise projection; and one whose plane tails ride in the last step's
/// tiles, `q`), a large
/// kernel still fully unrolled (11x11: 726 FMAs per tile, under the plan's cap) and one past the
/// cap (31x31: loops over taps, only the register tile unrolled).
fn curated() -> Vec<(&'static str, TokenStream, TokenStream)> {
    vec![
        (
            "depthwise_3x3_s1_c144",
            quote!(in = 144, out = 144, k = 3, groups = 144, pad = 1),
            quote!(
                pub struct Dw144;
            ),
        ),
        (
            "depthwise_3x3_s2_c96",
            quote!(in = 96, out = 96, k = 3, groups = 96, stride = 2, pad = 1),
            quote!(
                pub struct Dw96S2;
            ),
        ),
        (
            "grouped_3x3_resnext_c128_g32",
            quote!(in = 128, out = 128, k = 3, groups = 32, pad = 1),
            quote!(
                pub struct ResNeXt128;
            ),
        ),
        (
            "grouped_3x3_winograd_c512_g32",
            quote!(in = 512, out = 512, k = 3, groups = 32, pad = 1),
            quote!(
                pub struct ResNeXt512;
            ),
        ),
        (
            "pointwise_144_24",
            quote!(in = 144, out = 24, k = 1),
            quote!(
                pub struct Pw144x24;
            ),
        ),
        (
            "pointwise_960_320_fused_tail",
            quote!(in = 960, out = 320, k = 1),
            quote!(
                pub struct Pw960x320;
            ),
        ),
        (
            "depthwise_11x11_c32",
            quote!(in = 32, out = 32, k = 11, groups = 32, pad = 5),
            quote!(
                pub struct Dw11;
            ),
        ),
        (
            "depthwise_31x31_c8_tile_only",
            quote!(in = 8, out = 8, k = 31, groups = 8, pad = 15),
            quote!(
                pub struct Dw31;
            ),
        ),
        (
            "separable_mnv2_144_24_relu6",
            quote!(in = 144, out = 24, k = 3, pad = 1, separable, dw_act = "relu6"),
            quote!(
                pub struct Block3;
            ),
        ),
    ]
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

/// The struct name of a one-struct item, for the dump header.
fn item_name(item: &TokenStream) -> String {
    syn::parse2::<syn::ItemStruct>(item.clone())
        .expect("curated items are structs")
        .ident
        .to_string()
}

#[test]
fn snapshots_match() {
    let dir = snapshot_dir();
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some_and(|v| v == "1");
    let mut problems = Vec::new();
    for (name, attr, item) in curated() {
        let tokens = expand(attr, item.clone());
        // `pretty` falls back to the raw token string for an unparsable expansion; a snapshot
        // must be the formatted file.
        if let Err(e) = syn::parse2::<syn::File>(tokens.clone()) {
            problems.push(format!(
                "{name}: the expansion does not parse as a file: {e}"
            ));
            continue;
        }
        let text = dump::pretty(&item_name(&item), &tokens);
        let path = dir.join(format!("{name}.rs"));
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Err(e) => problems.push(format!(
                "{}: cannot read the snapshot ({e}); create it with \
                 `UPDATE_SNAPSHOTS=1 cargo test -p conv-macros snapshots_match` and review it",
                path.display()
            )),
            Ok(want) if want != text => {
                let line = want
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| want.lines().count().min(text.lines().count()));
                problems.push(format!(
                    "{}: the expansion changed; first difference at line {}:\n  \
                     snapshot:  {}\n  expansion: {}\n  if the change is intended, run \
                     `UPDATE_SNAPSHOTS=1 cargo test -p conv-macros snapshots_match` and review \
                     the diff",
                    path.display(),
                    line + 1,
                    want.lines().nth(line).unwrap_or("<end of file>"),
                    text.lines().nth(line).unwrap_or("<end of file>"),
                ))
            }
            Ok(_) => {}
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every snapshot file on disk belongs to a curated layer, so a renamed case leaves no stale file.
#[test]
fn no_stale_snapshots() {
    let names: Vec<String> = curated()
        .iter()
        .map(|(n, _, _)| format!("{n}.rs"))
        .collect();
    let stale: Vec<String> = snapshot_files()
        .into_iter()
        .filter_map(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .filter(|f| !names.contains(f))
        .collect();
    assert!(
        stale.is_empty(),
        "snapshot files of no curated layer (delete them): {stale:?}"
    );
}

fn snapshot_files() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(snapshot_dir()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------
// No `unsafe` in anything we emit
// ---------------------------------------------------------------------------------------------

/// Whether `tokens` contains the identifier `unsafe` at any depth.
fn has_unsafe(tokens: &TokenStream) -> bool {
    tokens.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "unsafe",
        TokenTree::Group(g) => has_unsafe(&g.stream()),
        TokenTree::Punct(_) | TokenTree::Literal(_) => false,
    })
}

#[test]
fn unsafe_detector_sees_nested_blocks() {
    assert!(has_unsafe(&quote!(
        fn f() {
            if x {
                g([unsafe { h() }])
            }
        }
    )));
    assert!(has_unsafe(&quote!(
        unsafe impl Send for X {}
    )));
    // Text that merely mentions it is fine.
    assert!(!has_unsafe(&quote!(
        #[doc = "no unsafe here"]
        fn unsafe_free() {}
    )));
}

/// One layer of every family and plan shape, plus the error path (compile error + stub).
fn every_family() -> Vec<(&'static str, TokenStream, TokenStream)> {
    let item = quote!(
        pub struct L;
    );
    let mut all = curated();
    let more = [
        (
            "depthwise, multiplier 3, stride 2, no bias",
            quote!(in = 3, out = 9, k = 3, groups = 3, stride = 2, pad = 1, bias = false),
        ),
        (
            "depthwise, dilation 2",
            quote!(in = 8, out = 8, k = 3, groups = 8, pad = 2, dilation = 2),
        ),
        (
            "depthwise 1x1 strided",
            quote!(in = 5, out = 5, k = 1, groups = 5, stride = 2),
        ),
        (
            "dense 3x3 stride 2 stem, no bias",
            quote!(in = 3, out = 32, k = 3, stride = 2, pad = 1, bias = false),
        ),
        (
            "grouped rectangular, per-axis stride and dilation",
            quote!(in = 4, out = 6, k = (3, 5), groups = 2, stride = (1, 2), pad = (1, 3, 0, 2), dilation = (2, 1)),
        ),
        (
            "dense 5x5, 48 input channels (taps-only loop)",
            quote!(in = 48, out = 8, k = 5, pad = 2),
        ),
        (
            "pointwise with a tail tile, grouped",
            quote!(in = 12, out = 21, k = 1, groups = 3),
        ),
        (
            "pointwise, long reduction",
            quote!(in = 67, out = 9, k = 1, bias = false),
        ),
        (
            "1x1 with padding (direct)",
            quote!(in = 3, out = 4, k = 1, pad = 1),
        ),
        (
            "depthwise with clamp",
            quote!(in = 8, out = 8, k = 3, groups = 8, pad = 1, clamp = (-1.5, 2)),
        ),
        (
            "Winograd with relu6, no bias",
            quote!(in = 64, out = 48, k = 3, groups = 2, pad = (0, 2, 2, 1), act = "relu6", bias = false),
        ),
        (
            "pointwise with relu",
            quote!(in = 16, out = 8, k = 1, act = "relu"),
        ),
        (
            "separable stride 2, relu / relu, no bias",
            quote!(in = 32, out = 64, k = 3, stride = 2, pad = 1, separable, dw_act = "relu", act = "relu", bias = false),
        ),
        (
            "separable 5x5 with clamps",
            quote!(in = 5, out = 3, k = 5, pad = 2, separable, dw_clamp = (-1, 1), clamp = (0, 6)),
        ),
        (
            "invalid attribute (fallback stub)",
            quote!(in = 3, out = 4, k = 0),
        ),
        (
            "invalid separable attribute (separable fallback stub)",
            quote!(in = 3, out = 4, k = 3, separable, groups = 2),
        ),
    ];
    all.extend(more.into_iter().map(|(n, a)| (n, a, item.clone())));
    all
}

#[test]
fn expansions_contain_no_unsafe() {
    let mut bad = Vec::new();
    for (name, attr, item) in every_family() {
        let tokens = expand(attr, item);
        assert!(!tokens.is_empty(), "{name}: empty expansion");
        if has_unsafe(&tokens) {
            bad.push(name);
        }
    }
    assert!(bad.is_empty(), "`unsafe` in the expansion of {bad:?}");
}

#[test]
fn snapshot_corpus_contains_no_unsafe() {
    let files = snapshot_files();
    assert!(
        files.len() >= curated().len(),
        "expected {} snapshot files in {}, found {}",
        curated().len(),
        snapshot_dir().display(),
        files.len()
    );
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let tokens: TokenStream = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: does not lex: {e}", path.display()));
        assert!(!has_unsafe(&tokens), "`unsafe` in {}", path.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Expansion size
// ---------------------------------------------------------------------------------------------

/// Token trees in `tokens`, a group counting as one plus its contents.
fn token_count(tokens: &TokenStream) -> usize {
    tokens
        .clone()
        .into_iter()
        .map(|t| match t {
            TokenTree::Group(g) => 1 + token_count(&g.stream()),
            _ => 1,
        })
        .sum()
}

/// Upper bound on the token trees of one expansion.
///
/// Why this number: the plan caps a tile body at `MAX_UNROLLED_FMAS` (768) straight-line FMAs and
/// turns channels, then taps, into loops beyond that. An expansion holds, per register class (2),
/// one main tile plus power-of-two remainder tiles (together under twice the main tile), so at
/// most ~3k unrolled FMAs; at ~12 tokens per FMA line plus its share of loads and splats, and
/// ~5k tokens of shared API, that is some 50k-70k tokens. Measured (when this test was added)
/// over a sweep of k in 1..=31, strides 1-3, dilations 1-2, channels 1..=1024 and groups: the
/// largest was 69_155 tokens (1x1 stride 2 dense 64 -> 17: a direct tile with all 64 channels
/// unrolled), dense 7x7 512 -> 512 48_487, the MobileNet depthwise 3x3 11_454, and the `k = 31`
/// depthwise 3_750 (loops over taps). 100_000 is ~1.45x the measured maximum: room for plan
/// tweaks, while a plan that stopped capping fails at once (one fully unrolled tile of the 7x7
/// 512-channel layer alone is over 25k FMAs, i.e. some 300k tokens).
const MAX_EXPANSION_TOKENS: usize = 100_000;

#[test]
fn token_count_counts_groups_and_leaves() {
    // `f`, `(`..`)` with `a`, `,`, `b` inside, `;`.
    assert_eq!(token_count(&quote!(f(a, b);)), 6);
}

#[test]
fn expansion_size_is_bounded_for_huge_kernels() {
    let item = quote!(
        pub struct Huge;
    );
    let layers = [
        (
            "depthwise 31x31",
            quote!(in = 512, out = 512, k = 31, groups = 512, pad = 15),
        ),
        (
            "dense 7x7 512 -> 512",
            quote!(in = 512, out = 512, k = 7, pad = 3),
        ),
        (
            "dense 1x1 stride 2 64 -> 17 (largest of the sweep)",
            quote!(in = 64, out = 17, k = 1, stride = 2, dilation = 2),
        ),
        (
            "dense 4x4 dilation 2 8 -> 8",
            quote!(in = 8, out = 8, k = 4, dilation = 2),
        ),
        (
            "dense 11x11 stride 2 64 -> 17",
            quote!(in = 64, out = 17, k = 11, stride = 2),
        ),
        (
            "dense 7x7 stride 2 stem",
            quote!(in = 3, out = 32, k = 7, stride = 2),
        ),
        (
            "pointwise 1024 -> 1024",
            quote!(in = 1024, out = 1024, k = 1),
        ),
    ];
    let mut sizes = Vec::new();
    for (name, attr) in layers {
        let tokens = expand(attr, item.clone());
        assert!(
            !tokens.to_string().contains("compile_error"),
            "{name}: did not expand to a layer"
        );
        sizes.push((name, token_count(&tokens)));
    }
    let over: Vec<_> = sizes
        .iter()
        .filter(|(_, n)| *n > MAX_EXPANSION_TOKENS)
        .collect();
    assert!(
        over.is_empty(),
        "expansions over {MAX_EXPANSION_TOKENS} tokens: {over:?} (all: {sizes:?})"
    );
}

// ---------------------------------------------------------------------------------------------
// CONV_KERNEL_DUMP
// ---------------------------------------------------------------------------------------------

#[test]
fn dump_writes_a_formatted_file_when_asked() {
    const VAR: &str = "CONV_KERNEL_DUMP";
    let _env = env_lock();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let root =
        std::env::temp_dir().join(format!("conv-macros-dump-{}-{stamp}", std::process::id()));
    // A directory that does not exist yet: the dump creates it.
    let dir = root.join("nested");
    let saved = std::env::var_os(VAR);

    std::env::set_var(VAR, &dir);
    let attr = quote!(in = 8, out = 8, k = 3, groups = 8, pad = 1);
    let tokens = super::expand(
        attr.clone(),
        quote!(
            pub struct DumpProbe;
        ),
    );
    std::env::remove_var(VAR);
    // Without the variable nothing is written.
    super::expand(
        attr,
        quote!(
            pub struct NotDumped;
        ),
    );
    if let Some(v) = saved {
        std::env::set_var(VAR, v);
    }

    let file = dir.join("DumpProbe.rs");
    let text = std::fs::read_to_string(&file);
    let not_dumped = dir.join("NotDumped.rs").exists();
    let _ = std::fs::remove_dir_all(&root);

    let text = text.unwrap_or_else(|e| panic!("{}: not written: {e}", file.display()));
    let header = "// @generated by conv-kernel's #[conv_kernel] for `DumpProbe`. Do not edit.\n";
    assert!(
        text.starts_with(header),
        "dump does not start with the header: {:?}",
        text.lines().next()
    );
    assert_eq!(text, dump::pretty("DumpProbe", &tokens));
    let file_ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("dump does not parse: {e}"));
    assert!(
        file_ast
            .items
            .iter()
            .any(|i| matches!(i, syn::Item::Struct(s) if s.ident == "DumpProbe")),
        "dump has no `struct DumpProbe`"
    );
    assert!(!not_dumped, "dumped although CONV_KERNEL_DUMP was unset");
}
