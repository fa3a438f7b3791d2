//! Pointwise (1x1, no padding): per group, a register-blocked GEMM over the flattened
//! pixels, `out[oc][p] = b[oc] + sum_ic w[oc][ic] * in[ic][p]`. A tile is `oc_tile` output
//! channels x `vecs` vectors of pixels; per input channel it loads `vecs` input vectors and
//! splats `oc_tile` weights. With a stride, the input pixels of a run of output pixels are
//! first gathered into a block of scratch that the same GEMM then reads
//! (`__private::gather`).
//!
//! The sweep runs every output-channel tile over one pixel step before the next step, so the
//! whole weights are read once per step. For weights past L2 (over 512 KiB per group) each
//! tile running over every pixel of the span before the next tile (its weights read once, the
//! panel from L2 by every tile, the plane's partial vectors as masked pixel vectors) measured
//! no better (throwaway timer, each shape in its own process, builds alternating, 1 thread,
//! minimum us): 1024 -> 1024 on 7 x 7 level, on 8 x 8 947-955 -> 902-908, but 960 -> 160 on
//! 4 x 4 55 -> 86, on 7 x 7 113 -> 141 and 320 -> 1280 on 7 x 7 340 -> 390: the masked
//! vectors cost more than the reads they save, and the weights' reads overlap the FMAs.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::emit::{acc, activate, conv_fields_with, lit, rt};
use super::FamilyCode;
use crate::plan::{GemmPlan, Plan};
use crate::spec::Spec;

/// A pointwise layer, or a grouped layer run as a GEMM over gathered pixels (`layer`; its GEMM
/// is `Spec::gathered_gemm`, whose weights are the layer's as they lie in memory).
pub fn emit(layer: &Spec, plans: &[Plan]) -> FamilyCode {
    let gemm = if gathers(layer) {
        layer.gathered_gemm()
    } else {
        layer.clone()
    };
    let spec = &gemm;
    let (w, b) = (format_ident!("w"), format_ident!("b"));
    let (col_fields, col_inits) = column_fields(spec, &w, &b, &quote!(weight), &quote!(&b));
    // The tile operands for `Isa::Amx`, when the machine has them.
    let rt = rt();
    let (groups, cout, cin) = (
        lit(spec.groups),
        lit(spec.out_channels),
        lit(spec.in_channels),
    );
    let act = super::emit::activation(spec.act);
    // AMX tiles read the input planes in place: 1x1 at stride 1 only.
    let amx = if gathers(layer) {
        quote!(::core::option::Option::None)
    } else {
        quote!(#rt::AmxGemm::new(weight, &b, #groups, #cout, #cin, #act))
    };
    let col_fields = quote! {
        #col_fields
        amx: ::core::option::Option<#rt::AmxGemm>,
    };
    let col_inits = quote! {
        #col_inits
        amx: #amx,
    };
    let (fields, new_fn) = conv_fields_with(layer, col_fields, col_inits);
    let runs = plans
        .iter()
        .map(|p| match p {
            Plan::Gemm(g) => (g.regs, run(layer, spec, g)),
            _ => unreachable!("pointwise family has GEMM plans"),
        })
        .collect();
    let scratch_len = if gathers(layer) {
        let cpg_in = lit(spec.in_per_group());
        let taps = taps(layer);
        quote!(#rt::gather_len(#cpg_in, ho * wo) + #rt::gather_row_len(w, wo, #taps))
    } else {
        quote!(0)
    };
    FamilyCode {
        fields,
        new_fn,
        scratch_len,
        runs,
        generated: quote! {
            fn amx(&self) -> ::core::option::Option<&#rt::AmxGemm> {
                self.amx.as_ref()
            }
        },
    }
}

/// The pieces of a GEMM stage: tile functions and the code that computes every output channel
/// of one group for a range of pixels.
pub struct Stage {
    /// The tile functions (items).
    pub tiles: TokenStream,
    /// Needs `simd`, `lanes`, `inp` (the group's input channel planes from the first pixel,
    /// `istride` floats apart), `out` (a `PlanesMut` of its output planes from the first pixel),
    /// `npix` (pixels to compute) and `oc0` (first output channel of the group, for the weights
    /// and bias in the fields `w_field` / `b_field`).
    pub sweep: TokenStream,
}

/// The GEMM stage of `plan`, its tile functions named `{prefix}_t{t}_v{v}[p]`.
pub fn stage(
    spec: &Spec,
    plan: &GemmPlan,
    prefix: &str,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
) -> Stage {
    let cpg_in = spec.in_per_group();
    let cpg_out = spec.out_per_group();
    let cpg_in_l = lit(cpg_in);
    let oct = plan.oc_tile;
    let ntiles = cpg_out / oct;
    let vecs = lit(plan.vecs);

    let mut tiles = TokenStream::new();
    let (ntiles_l, oct_l) = (lit(ntiles), lit(oct));
    let (kc, kc_l, nb_l) = (plan.kc, lit(plan.kc), lit(plan.blocks));
    // A tile function's name, and the weight and bias operands of a tile of `t` channels from
    // channel `oc` (an expression) over block `kb`: row `i` of its weights at `i * cpg_in`.
    let tile_name = |t: usize, v: usize, part: bool| {
        format_ident!("{}_t{}_v{}{}", prefix, t, v, if part { "p" } else { "" })
    };
    let operands = |oc: &TokenStream, t: usize| {
        let (wl, tl) = (lit((t - 1) * cpg_in + kc), lit(t));
        quote!(&self.#w_field[(oc0 + #oc) * #cpg_in_l + kb * #kc_l..][..#wl], &self.#b_field[oc0 + #oc..][..#tl])
    };
    // The calls of one pixel step over every output-channel tile of the group (the main tiles,
    // then the tail tile), for tiles of `v` vectors (`part`: one masked vector of `len`).
    let mut sweep = |v: usize, part: bool| -> TokenStream {
        let mut emit_tile = |t: usize| {
            let name = tile_name(t, v, part);
            tiles.extend(tile_fn(spec, plan, t, v, part, false, &name));
            name
        };
        let main = emit_tile(oct);
        let len = if part { quote!(len) } else { quote!(lanes) };
        let wmain = operands(&quote!(oc), oct);
        // The first tile of a step (over each block) also prefetches the next step's panel.
        let call = |pf: bool| quote!(#main::<S, #pf>(simd, &inp[kb * #kc_l * istride..], istride, &mut out.planes(oc - oc_base, #oct_l), p, #len, #wmain, kb == 0, kb + 1 == #nb_l););
        let (first, rest) = (call(true), call(false));
        // The part's tiles (`tiles_lo..tiles_hi`, and the tail tile when `with_tail`).
        let mut calls = quote! {
            if tiles_lo < tiles_hi {
                let oc = tiles_lo * #oct_l;
                #first
                for t in tiles_lo + 1..tiles_hi {
                    let oc = t * #oct_l;
                    #rest
                }
            }
        };
        if plan.oc_tail > 0 {
            let tail = emit_tile(plan.oc_tail);
            let tt = lit(plan.oc_tail);
            let wtail = operands(&quote!(oc), plan.oc_tail);
            calls.extend(quote! {
                if with_tail {
                    let oc = #ntiles_l * #oct_l;
                    #tail::<S, false>(simd, &inp[kb * #kc_l * istride..], istride, &mut out.planes(oc - oc_base, #tt), p, #len, #wtail, kb == 0, kb + 1 == #nb_l);
                }
            });
        }
        // Every tile over one block of input channels, then the next (its panel stays in L1).
        if plan.blocks > 1 {
            quote!(for kb in 0..#nb_l { #calls })
        } else {
            quote!(let kb = 0; #calls)
        }
    };
    let full = sweep(plan.vecs, false);
    // The last whole step with the plane's tail pixels (`rem`, 1 or 2) in its tiles (see
    // `plan::FUSED_TAIL_OC`): per pair of tiles, the second computes the first tail pixel for
    // the pair's vector of output channels, the first the second pixel if there is one.
    let mut fused_tile = TokenStream::new();
    let fused = if plan.fused_tail {
        let main = tile_name(oct, plan.vecs, false);
        let name = format_ident!("{}q", main);
        fused_tile = tile_fn(spec, plan, oct, plan.vecs, false, true, &name);
        let rt = rt();
        let (wc, bc) = column_idents(w_field, b_field);
        let cpg_out_l = lit(cpg_out);
        let (a_args, b_args) = (
            operands(&quote!(ch0), oct),
            operands(&quote!(ch0 + #oct_l), oct),
        );
        quote! {
            // Fused plans run the whole reduction as one block.
            let kb = 0;
            const PAD: usize = #rt::padded_channels(#cpg_out_l);
            let grp = oc0 / #cpg_out_l;
            let wcg = &self.#wc[grp * #cpg_in_l * PAD..][..#cpg_in_l * PAD];
            let bcg = &self.#bc[grp * PAD..][..PAD];
            let planes = (oc_base, oc_range.end);
            let mut t = tiles_lo;
            while t < tiles_hi {
                let ch0 = t * #oct_l;
                let (cb, cw, co) = #rt::col_block(ch0, PAD, #cpg_in_l);
                let (tw, tb) = (&wcg[cb + co..], &bcg[ch0..]);
                if rem == 2 {
                    #name(simd, inp, istride, out, ch0 - oc_base, p, lanes, #a_args, tw, cw, tb, ch0, planes, p + step + 1);
                } else {
                    #main::<S, false>(simd, inp, istride, &mut out.planes(ch0 - oc_base, #oct_l), p, lanes, #a_args, true, true);
                }
                #name(simd, inp, istride, out, ch0 + #oct_l - oc_base, p, lanes, #b_args, tw, cw, tb, ch0, planes, p + step);
                t += 2;
            }
        }
    } else {
        quote!()
    };
    // Whole vectors left after the full steps (fewer than `vecs`): one narrower tile.
    let rest_arms: Vec<TokenStream> = (1..plan.vecs)
        .map(|v| {
            let calls = sweep(v, false);
            let vl = lit(v);
            quote!(#vl => { #calls p += #vl * lanes; })
        })
        .collect();
    let part = sweep(1, true);
    tiles.extend(fused_tile);
    let columns = column_tail(spec, plan, prefix, w_field, b_field, &mut tiles);
    let rest = if rest_arms.is_empty() {
        quote!()
    } else {
        quote! {
            match (npix - p) / lanes {
                #(#rest_arms)*
                _ => {}
            }
        }
    };
    let rt = rt();
    let cpg_out_l = lit(cpg_out);
    let steps = if plan.fused_tail {
        let fused_oc = lit(crate::plan::FUSED_TAIL_OC);
        quote! {
            // The plane's tail pixels after its last whole step, when that step's tiles take
            // them (vectors of `FUSED` channels on as many lanes, whole vectors of the part's
            // channels).
            const FUSED: usize = #fused_oc;
            let rem = (npix - head) % step;
            let fuse = lanes == FUSED
                && head == 0
                && npix >= step
                && (rem == 1 || rem == 2)
                && oc_base % FUSED == 0
                && oc_range.end % FUSED == 0;
            while p + step <= npix {
                if fuse && p + step + rem == npix {
                    #fused
                } else {
                    #full
                }
                p += step;
            }
            if fuse {
                p = npix;
            }
        }
    } else {
        quote! {
            while p + step <= npix {
                #full
                p += step;
            }
        }
    };
    let sweep = quote! {
        // The output channels this part computes (`Args::oc`): its tiles and whether it has
        // the group's last, shorter tile.
        let oc_base = oc_range.start;
        let (tiles_lo, tiles_hi) = (oc_base / #oct_l, (oc_range.end / #oct_l).min(#ntiles_l));
        let with_tail = oc_range.end == #cpg_out_l;
        let step = #vecs * lanes;
        // Whole steps start at the planes' first vector boundary (see `align_head`), so that
        // they load whole cache lines.
        let head = #rt::align_head::<S>(inp, istride, npix).min(npix);
        let mut p = head;
        #steps
        #rest
        // What is left at either end, fewer than a vector each: the pixels before the boundary
        // and those after the last whole vector.
        for (p, end) in [(0, head), (p, npix)] {
            if p < end {
                let len = end - p;
                #columns
                else {
                    #part
                }
            }
        }
    };
    Stage { tiles, sweep }
}

/// Whether the layer's body gathers its pixels into blocks for the GEMM (see
/// `__private::gather`): a 1x1 layer with a stride, or a grouped layer `plan::gathers` runs so.
fn gathers(layer: &Spec) -> bool {
    layer.stride_h * layer.stride_w > 1 || crate::plan::gathers(layer)
}

/// The window of a gathering layer, as the runtime's `Taps`.
fn taps(l: &Spec) -> TokenStream {
    let rt = rt();
    let [kh, kw, sh, sw, dh, dw, pt, pl] = [
        l.kernel_h,
        l.kernel_w,
        l.stride_h,
        l.stride_w,
        l.dilation_h,
        l.dilation_w,
        l.pad_top,
        l.pad_left,
    ]
    .map(lit);
    quote!(#rt::Taps { k: (#kh, #kw), stride: (#sh, #sw), dilation: (#dh, #dw), pad: (#pt, #pl) })
}

/// The body of a plan; `layer` is the layer, `spec` its GEMM (the same for a 1x1 layer).
fn run(layer: &Spec, spec: &Spec, plan: &GemmPlan) -> TokenStream {
    let rt = rt();
    let f = format_ident!("__run_r{}", plan.regs);
    let (cpg_in_l, cpg_out_l) = (lit(spec.in_per_group()), lit(spec.out_per_group()));
    let (groups, cin) = (lit(spec.groups), lit(spec.in_channels));
    let Stage { tiles, sweep } =
        stage(spec, plan, "tile", &format_ident!("w"), &format_ident!("b"));
    if gathers(layer) {
        let l = layer;
        let (chans, lcin) = (lit(l.in_per_group()), lit(l.in_channels));
        let taps = taps(layer);
        return quote! {
            #[inline(always)]
            #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one)]
            fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
                #tiles

                let #rt::Args { input, mut output, scratch, h, w, wo, units, span, oc, .. } = a;
                let lanes = S::F32_LANES;
                let hw = h * w;
                // Runs of output pixels whose input pixels, every channel of the group, are
                // gathered into a block (`istride` floats per channel) for the GEMM.
                let istride = #rt::gather_pixels(#cpg_in_l, span.end - span.start);
                let (block, rows) = #rt::gather_block(scratch, #cpg_in_l, istride);
                let taps = #taps;
                for u in units.clone() {
                    let (b, g) = (u / #groups, u % #groups);
                    let oc0 = g * #cpg_out_l;
                    let src = &input[(b * #lcin + g * #chans) * hw..][..#chans * hw];
                    let mut out_unit = output.planes((u - units.start) * oc.len(), oc.len());
                    let mut p0 = span.start;
                    while p0 < span.end {
                        let npix = (span.end - p0).min(istride);
                        #rt::gather(simd, src, (h, w), wo, taps, #chans, (p0, npix), block, istride, rows);
                        let inp: &[f32] = block;
                        let out = &mut out_unit.cols(p0 - span.start, npix);
                        let oc_range = oc.clone();
                        #sweep
                        p0 += npix;
                    }
                }
            }
        };
    }

    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #tiles

            let #rt::Args { input, mut output, h, w, units, span, oc, .. } = a;
            let lanes = S::F32_LANES;
            let hw = h * w;
            let (istride, npix) = (hw, span.end - span.start);
            for u in units.clone() {
                let (b, g) = (u / #groups, u % #groups);
                let oc0 = g * #cpg_out_l;
                let inp = &input[(b * #cin + g * #cpg_in_l) * hw + span.start..][..(#cpg_in_l - 1) * hw + npix];
                let out = &mut output.planes((u - units.start) * oc.len(), oc.len());
                let oc_range = oc.clone();
                #sweep
            }
        }
    }
}

/// A tile of `t` output channels x `v` vectors. `part` tiles have one vector of `len` pixels
/// and use masked loads and stores. `fused` tiles (whole steps, unblocked reductions) also
/// compute one tail pixel `tq` of a vector of output channels from `ch0` (see
/// `plan::FUSED_TAIL_OC`): weights `tw[ic * cw..]` (the columns), bias `tb`; they take the
/// part's planes `out` (channels `planes.0..planes.1`) and store their own at `oc_rel`.
fn tile_fn(
    spec: &Spec,
    plan: &GemmPlan,
    t: usize,
    v: usize,
    part: bool,
    fused: bool,
    name: &syn::Ident,
) -> TokenStream {
    let rt = rt();
    let cpg_in = spec.in_per_group();
    let (u, kc, blocked) = (plan.ic_unroll, plan.kc, plan.blocks > 1);
    debug_assert!(!fused || (!part && !blocked));
    // One input channel per iteration in fused tiles: the tail's accumulator and pixel take
    // the registers of a second channel's input vectors.
    let u = if fused { 1 } else { u };
    // Tiles of whole pixel steps look one step ahead (see `stage`); fused tiles run the last
    // step.
    let prefetch = !part && v == plan.vecs && !fused;
    let accs: Vec<_> = (0..t).flat_map(|i| (0..v).map(move |j| (i, j))).collect();
    let init = accs.iter().map(|&(i, j)| {
        let a = acc(i, 0, j);
        let (il, jl) = (lit(i), lit(j));
        if !blocked {
            quote!(let mut #a = simd.splat_f32s(bias[#il]);)
        } else if part {
            quote!(let mut #a = #rt::acc_init_part(simd, first, bias[#il], out, #il, p, len);)
        } else {
            quote!(let mut #a = #rt::acc_init(simd, first, bias[#il], out, #il, p + #jl * lanes);)
        }
    });
    let mut step = TokenStream::new();
    for k in 0..u {
        let kl = lit(k);
        for j in 0..v {
            let x = format_ident!("x_{}_{}", k, j);
            let jl = lit(j);
            step.extend(if part {
                quote!(let #x = #rt::ld_part(simd, inp, (ic + #kl) * istride + p, len);)
            } else {
                quote!(let #x = panel.ld::<S, #jl>(simd, ic + #kl);)
            });
            // The next pixel step's vector of this channel, on its way from L3 while this step
            // computes: a pixel step reads one short run from each of `in / groups` planes,
            // more streams than the hardware prefetchers follow.
            if prefetch {
                let ahead = lit(v + j);
                step.extend(quote!(if PF { #rt::prefetch(inp, (ic + #kl) * istride + p + #ahead * lanes); }));
            }
        }
        for i in 0..t {
            let wk = format_ident!("w_{}_{}", k, i);
            let il = lit(i * cpg_in);
            step.extend(quote!(let #wk = simd.splat_f32s(wt[#il + ic + #kl]);));
            for j in 0..v {
                let a = acc(i, 0, j);
                let x = format_ident!("x_{}_{}", k, j);
                step.extend(quote!(#a = simd.mul_add_e_f32s(#x, #wk, #a);));
            }
        }
        if fused {
            step.extend(quote! {
                let tv = #rt::ld(simd, tw, (ic + #kl) * cw);
                let tx = simd.splat_f32s(tin[(ic + #kl) * istride]);
                tail = simd.mul_add_e_f32s(tv, tx, tail);
            });
        }
    }
    let stores = accs.iter().map(|&(i, j)| {
        let a = acc(i, 0, j);
        let mut act = activate(spec.act, &a);
        if blocked && !act.is_empty() {
            act = quote!(if last { #act });
        }
        let (il, jl) = (lit(i), lit(j));
        if part {
            quote!(#act #rt::st_part_plane(simd, out, #il, p, len, #a);)
        } else if fused {
            quote!(#act #rt::st_plane(simd, &mut own, #il, p + #jl * lanes, #a);)
        } else {
            quote!(#act #rt::st_plane(simd, out, #il, p + #jl * lanes, #a);)
        }
    });
    let (iters, ul, nw) = (lit(kc / u), lit(u), lit((t - 1) * cpg_in + kc));
    let tl = lit(t);
    let panel = if part {
        quote!()
    } else {
        let (c, vl) = (lit(kc), lit(v));
        quote!(let panel = #rt::Panel::<#c, #vl>::new::<S>(inp, istride, p);)
    };
    let len_name = if part { quote!(len) } else { quote!(lanes) };
    if fused {
        let act = activate(spec.act, &format_ident!("tail"));
        return quote! {
            #[inline(always)]
            #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, unused_variables)]
            fn #name<S: #rt::Simd>(
                simd: S,
                inp: &[f32],
                istride: usize,
                out: &mut #rt::PlanesMut<'_>,
                oc_rel: usize,
                p: usize,
                lanes: usize,
                wt: &[f32],
                bias: &[f32],
                tw: &[f32],
                cw: usize,
                tb: &[f32],
                ch0: usize,
                planes: (usize, usize),
                tq: usize,
            ) {
                let wt = &wt[..#nw];
                let bias = &bias[..#tl];
                let tin = &inp[tq..];
                #panel
                #(#init)*
                let mut tail = #rt::ld(simd, tb, 0);
                for i in 0..#iters {
                    let ic = i * #ul;
                    #step
                }
                {
                    let mut own = out.planes(oc_rel, #tl);
                    #(#stores)*
                }
                #act
                #rt::st_column(simd, out, ch0, planes, tq, tail);
            }
        };
    }
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, unused_variables)]
        fn #name<S: #rt::Simd, const PF: bool>(
            simd: S,
            inp: &[f32],
            istride: usize,
            out: &mut #rt::PlanesMut<'_>,
            p: usize,
            #len_name: usize,
            wt: &[f32],
            bias: &[f32],
            first: bool,
            last: bool,
        ) {
            let wt = &wt[..#nw];
            let bias = &bias[..#tl];
            #panel
            #(#init)*
            for i in 0..#iters {
                let ic = i * #ul;
                #step
            }
            #(#stores)*
        }
    }
}

/// The fields of the channel-vector tail's operands beside the weight and bias fields `w_field`
/// and `b_field` (named `{w_field}c` and `{b_field}c`, which [`column_tail`] reads), and their
/// initialisers from the expressions `weight` (PyTorch-layout weights) and `bias` (the stored
/// bias, a `&[f32]` of `out` floats).
pub fn column_fields(
    spec: &Spec,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
    weight: &TokenStream,
    bias: &TokenStream,
) -> (TokenStream, TokenStream) {
    let rt = rt();
    let (wc, bc) = column_idents(w_field, b_field);
    let (groups, cpg_out, cpg_in) = (
        lit(spec.groups),
        lit(spec.out_per_group()),
        lit(spec.in_per_group()),
    );
    (
        quote! {
            #wc: ::std::vec::Vec<f32>,
            #bc: ::std::vec::Vec<f32>,
        },
        quote! {
            #wc: #rt::pack_columns(#weight, #groups, #cpg_out, #cpg_in),
            #bc: #rt::pad_groups(#bias, #groups, #cpg_out),
        },
    )
}

/// The names of the column operand fields of the weight and bias fields `w_field`, `b_field`.
fn column_idents(w_field: &syn::Ident, b_field: &syn::Ident) -> (syn::Ident, syn::Ident) {
    (format_ident!("{}c", w_field), format_ident!("{}c", b_field))
}

/// The channel-vector tail of the `len` (fewer than a vector) pixels `p..end`: `if <cheaper>
/// { .. }`, to be followed by the masked-vector `else`. Computing them along output channels
/// takes `len` x (channel vectors) FMAs per input channel against one per output channel for the
/// masked pixel vector; at 14x14 (4 pixels left on AVX-512) and 7x7 (1 pixel) that is 4 to 16
/// times fewer. Tiles are `col_pixels` x `col_vecs`, then narrower ones for what is left.
///
/// Only for the tail: run over every pixel of a 14 x 14 plane (384 -> 64 channels, AVX-512)
/// they took 125 us against 89 for the pixel-vector tiles (10th percentile, 20 interleaved
/// rounds), as each tile of 4 pixels streams its group's whole weight panel (96 KiB) from L2.
fn column_tail(
    spec: &Spec,
    plan: &GemmPlan,
    prefix: &str,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
    tiles: &mut TokenStream,
) -> TokenStream {
    let (pt, vt) = (plan.col_pixels, plan.col_vecs);
    let mut names = Vec::new();
    for (px, vx) in [(pt, vt), (pt, 1), (1, vt), (1, 1)] {
        let name = format_ident!("{}_col_p{}_v{}", prefix, px, vx);
        tiles.extend(col_tile_fn(spec, px, vx, &name));
        names.push(name);
    }
    let [big, pix, vec, one] = [&names[0], &names[1], &names[2], &names[3]];
    let rt = rt();
    let (cpg_in_l, cpg_out_l) = (lit(spec.in_per_group()), lit(spec.out_per_group()));
    let (pt_l, vt_l) = (lit(pt), lit(vt));
    let (wc, bc) = column_idents(w_field, b_field);
    quote! {
        // The vectors of channels that hold the part's (`Args::oc`; its first and last may
        // hold other parts' channels too, which it computes but does not store).
        if len * (oc_range.end.div_ceil(lanes) - oc_base / lanes) < oc_range.end - oc_base {
            const PAD: usize = #rt::padded_channels(#cpg_out_l);
            let grp = oc0 / #cpg_out_l;
            let wc = &self.#wc[grp * #cpg_in_l * PAD..][..#cpg_in_l * PAD];
            let bc = &self.#bc[grp * PAD..][..PAD];
            let (ob_lo, ob_hi) = (oc_base / lanes, oc_range.end.div_ceil(lanes));
            let planes = (oc_base, oc_range.end);
            let mut q = p;
            while q < end {
                let wide = end - q >= #pt_l;
                // Whole tiles where they lie in one block of the columns (a part's channels
                // may start inside a block), single vectors elsewhere.
                let mut ob = ob_lo;
                while ob < ob_hi {
                    let at = ob * lanes % #rt::COL_BLOCK;
                    if ob + #vt_l <= ob_hi && at + #vt_l * lanes <= #rt::COL_BLOCK {
                        if wide {
                            #big(simd, inp, istride, out, planes, q, ob, wc, bc);
                        } else {
                            #vec(simd, inp, istride, out, planes, q, ob, wc, bc);
                        }
                        ob += #vt_l;
                    } else {
                        if wide {
                            #pix(simd, inp, istride, out, planes, q, ob, wc, bc);
                        } else {
                            #one(simd, inp, istride, out, planes, q, ob, wc, bc);
                        }
                        ob += 1;
                    }
                }
                q += if wide { #pt_l } else { 1 };
            }
        }
    }
}

/// A channel-vector tile: pixels `q..q + px` x output-channel vectors `ob..ob + vx` of one group
/// (`wc`: its weight columns, `bc`: its padded bias), stored to the planes of the part's
/// channels `planes.0..planes.1` (`out` starts at `planes.0`); lanes of channels outside them
/// (another part's, before or after, or the padding) are dropped.
fn col_tile_fn(spec: &Spec, px: usize, vx: usize, name: &syn::Ident) -> TokenStream {
    let rt = rt();
    let (cpg_in, cpg_out) = (lit(spec.in_per_group()), lit(spec.out_per_group()));
    let accs: Vec<(usize, usize)> = (0..px).flat_map(|i| (0..vx).map(move |j| (i, j))).collect();
    let init = accs.iter().map(|&(i, j)| {
        let a = acc(i, 0, j);
        let j = lit(j);
        quote!(let mut #a = #rt::ld(simd, bc, (ob + #j) * lanes);)
    });
    let mut step = TokenStream::new();
    for j in 0..vx {
        let wj = format_ident!("w_{}", j);
        let jl = lit(j);
        step.extend(quote!(let #wj = #rt::ld(simd, col, co + #jl * lanes);));
    }
    for i in 0..px {
        let xi = format_ident!("x_{}", i);
        let il = lit(i);
        step.extend(quote!(let #xi = simd.splat_f32s(row[#il]);));
        for j in 0..vx {
            let a = acc(i, 0, j);
            let wj = format_ident!("w_{}", j);
            step.extend(quote!(#a = simd.mul_add_e_f32s(#wj, #xi, #a);));
        }
    }
    let stores = accs.iter().map(|&(i, j)| {
        let a = acc(i, 0, j);
        let act = activate(spec.act, &a);
        let (il, jl) = (lit(i), lit(j));
        quote! {
            #act
            #rt::st_column(simd, out, (ob + #jl) * lanes, planes, q + #il, #a);
        }
    });
    let pxl = lit(px);
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, unused_variables)]
        fn #name<S: #rt::Simd>(
            simd: S,
            inp: &[f32],
            istride: usize,
            out: &mut #rt::PlanesMut<'_>,
            planes: (usize, usize),
            q: usize,
            ob: usize,
            wc: &[f32],
            bc: &[f32],
        ) {
            const PAD: usize = #rt::padded_channels(#cpg_out);
            let lanes = S::F32_LANES;
            #(#init)*
            // The tile's vectors lie in one block of the columns (see `pack_columns`).
            let (cb, cw, co) = #rt::col_block(ob * lanes, PAD, #cpg_in);
            for ic in 0..#cpg_in {
                let col = &wc[cb + ic * cw..][..cw];
                let row = &inp[ic * istride + q..][..#pxl];
                #step
            }
            #(#stores)*
        }
    }
}
