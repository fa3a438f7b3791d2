//! Direct convolution: depthwise (one input channel per group, any multiplier) and grouped.
//!
//! Per batch image and group, output rows are computed band by band: the runtime copies the
//! rows one band reads into a zero-padded, phase-split buffer (`__private::Band`), so every tap
//! of every tile is a plain contiguous vector load and the tile code has no border logic. A
//! register tile is `oc_tile` output channels x `rows` output rows x one vector of columns.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use super::emit::{acc, activate, activation, conv_fields, conv_fields_with, isize_lit, lit, rt};
use super::winograd;
use super::FamilyCode;
use crate::plan::{
    flat_ic_step, in_place_taps, rows_in, stream_reads, DirectPlan, End, Plan, StreamPlan, Unroll,
};
use crate::spec::Spec;

pub fn emit(spec: &Spec, plans: &[Plan]) -> FamilyCode {
    let wino: Vec<_> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::Winograd(w) => Some(w),
            Plan::Direct(d) => d.wino.as_ref(),
            _ => None,
        })
        .collect();
    let (fields, new_fn) = if !wino.is_empty() {
        let (field, init) = winograd::fields(spec, &wino);
        conv_fields_with(spec, field, init)
    } else {
        conv_fields(spec)
    };
    let rt = rt();
    let cpg_in = lit(spec.in_per_group());
    // Scratch of each plan: its band, or the row of zeros in-place tiles read for padding rows.
    let taps = lit(spec.taps());
    let flat_need = quote!(#rt::Flat::<#taps>::scratch_len(lanes, ho, wo));
    let needs = plans.iter().flat_map(|p| match p {
        // Streaming tiles read padding rows from a row of zeros.
        Plan::Direct(d) if d.stream.as_ref().is_some_and(|s| s.always) => vec![quote!(w)],
        Plan::Direct(d) => {
            let own = if d.flat {
                flat_need.clone()
            } else if d.in_place {
                quote!(w)
            } else {
                let rows = lit(d.rows);
                quote!(#rt::Band::new(&p, #cpg_in, lanes, ho, wo, #rows).scratch_len())
            };
            let narrow = d.narrow.as_ref().map(|_| flat_need.clone());
            let stream = d.stream.as_ref().map(|_| quote!(w));
            let wino = d.wino.as_ref().map(|wp| winograd::scratch_need(spec, wp));
            std::iter::once(own)
                .chain(narrow)
                .chain(stream)
                .chain(wino)
                .collect()
        }
        Plan::Winograd(wp) => vec![winograd::scratch_need(spec, wp)],
        _ => unreachable!("direct family has direct or Winograd plans"),
    });
    let scratch_len = quote! {
        let p = <Self as #rt::Generated>::GEOMETRY;
        let mut need = 0;
        #( need = need.max(#needs); )*
        need
    };
    let runs = plans
        .iter()
        .map(|p| match p {
            Plan::Direct(d) => (d.regs, run_direct(spec, d)),
            Plan::Winograd(wp) => (wp.regs, winograd::run(spec, wp)),
            _ => unreachable!("direct family has direct or Winograd plans"),
        })
        .collect();
    FamilyCode {
        fields,
        new_fn,
        scratch_len,
        runs,
        generated: quote!(),
    }
}

/// The `__run_rNN` method of a direct plan; with a streaming, `narrow` or Winograd plan, a
/// method that picks at run time between the row tiles (`__run_rows_rNN`) and the streaming
/// (`__run_stream_rNN`), flat (`__run_narrow_rNN`) or Winograd (`__run_wino_rNN`) ones; a layer
/// that always streams has the streaming method alone.
fn run_direct(spec: &Spec, plan: &DirectPlan) -> TokenStream {
    let body = |plan: &DirectPlan, suffix: &str| {
        if plan.flat {
            run_flat(spec, plan, suffix)
        } else if plan.in_place {
            run_in_place(spec, plan, suffix)
        } else {
            run(spec, plan, suffix)
        }
    };
    let rt = rt();
    let taps = lit(spec.taps());
    let regs = plan.regs;
    let f = format_ident!("__run_r{}", regs);
    if let Some(stream) = plan.stream.as_ref().filter(|s| s.always) {
        return run_stream(spec, stream, &f);
    }
    if plan.narrow.is_none() && plan.stream.is_none() && plan.wino.is_none() {
        return body(plan, "");
    }
    let f_rows = format_ident!("__run_rows_r{}", regs);
    let mut out = body(plan, "_rows");
    let mut pick = quote!(self.#f_rows(simd, a));
    if let Some(narrow) = &plan.narrow {
        let f_narrow = format_ident!("__run_narrow_r{}", regs);
        out.extend(body(narrow, "_narrow"));
        pick = quote! {
            if #rt::Flat::<#taps>::prefer(S::F32_LANES, a.ho, a.wo) {
                self.#f_narrow(simd, a)
            } else {
                #pick
            }
        };
    }
    if let Some(stream) = &plan.stream {
        let f_stream = format_ident!("__run_stream_r{}", regs);
        out.extend(run_stream(spec, stream, &f_stream));
        let take = if crate::plan::stream_wide(spec, plan) {
            let (cin, cout) = (lit(spec.in_channels), lit(spec.out_channels));
            quote!(#rt::StreamRows::<1>::prefer_wide(S::F32_LANES, a.wo, a.n * (#cin * a.h * a.w + #cout * a.ho * a.wo)))
        } else {
            quote!(#rt::StreamRows::<1>::prefer(S::F32_LANES, a.wo))
        };
        pick = quote! {
            if #take {
                self.#f_stream(simd, a)
            } else {
                #pick
            }
        };
    }
    if let Some(wp) = &plan.wino {
        let f_wino = format_ident!("__run_wino_r{}", regs);
        out.extend(winograd::run_as(spec, wp, &f_wino));
        let (ci, co) = (lit(spec.in_per_group()), lit(spec.out_per_group()));
        pick = quote! {
            if #rt::wino_ch_prefer(S::F32_LANES, a.wo, #ci, #co) {
                self.#f_wino(simd, a)
            } else {
                #pick
            }
        };
    }
    quote! {
        #out
        #[inline(always)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #pick
        }
    }
}

/// The method `f` (`__run_stream_rNN`, or `__run_rNN` when the layer always streams) of a
/// streaming plan (see `plan::plan_stream`): per tile of `units` units (the last tile repeats
/// the span's last unit to fill its streams and does not store the repeats) and vector of
/// output columns, one step per output row from the span's first to `slots - 1` past its last.
/// A step starts the newest output row's accumulators from the bias, loads the `stride` input
/// rows it brings of each unit in place, adds each into the `slots` output rows that read it,
/// stores the oldest (now complete) and shifts the ring. Steps where all slots hold rows of the
/// span and all rows lie in the plane run one body in a loop of their own (`StreamSteps`: one
/// range check, then a pointer bump per step). The `slots - 1` steps before and after them are
/// unrolled with every guard decided by the generator, for spans from the plane's top to its
/// bottom (one copy per `h mod stride`); any other span (short planes, thread splits inside the
/// plane) runs those steps through a second body with each slot's FMAs behind its row's range
/// check. Throwaway
/// timer, 1 thread, AVX-512, data in L2, interleaved runs, guarded loop -> unrolled ends: 3x3
/// on 384 x 14 x 14 14.6-15.5 -> 12.8-13.4 us, 960 x 7 x 7 22.4-24.0 -> 19.1-19.3, 384 x 28 x
/// 28 81.5-82.7 -> 76.7-79.6; 5x5 on 240 x 14 x 14 21.4-21.6 -> 19.0-19.7, 672 x 7 x 7
/// 34.2-35.4 -> 26.7-26.9, stride 2 on 672 x 14 x 14 60.1-61.9 -> 53.2-56.3; 7x7 on 384 x 14 x
/// 14 62.9-63.9 -> 55.5-56.6. Splitting the steady steps off alone (their rows by pointer
/// bumps, the guarded loop around them) changed nothing measurable; the unrolled ends did: the
/// guarded steps cost as much as steady ones, load the zero rows above and below the plane and
/// multiply them in, and on 14-row planes they were 5 of 16 steps (3x3).
fn run_stream(spec: &Spec, plan: &StreamPlan, f: &syn::Ident) -> TokenStream {
    let rt = rt();
    let zero_row = zero_row();
    let sweep = stream_sweep(spec, plan, &format_ident!("w"), &format_ident!("b"));
    // Rows at most half a vector wide: two channels per vector (AVX-512).
    let pairs = if plan.pairs {
        let (kh, kw, sh, sw, dh, dw) = (
            lit(spec.kernel_h),
            lit(spec.kernel_w),
            lit(spec.stride_h),
            lit(spec.stride_w),
            lit(spec.dilation_h),
            lit(spec.dilation_w),
        );
        let (slots, taps, ch) = (lit(plan.slots), lit(spec.taps()), lit(spec.groups));
        let (pt, pl) = (lit(spec.pad_top), lit(spec.pad_left));
        let act = activation(spec.act);
        quote! {
            let layer = #rt::PairLayer {
                weights: &self.w,
                bias: &self.b,
                channels: #ch,
                pad_top: #pt,
                pad_left: #pl,
                act: #act,
            };
            let geom = (h, w, wo);
            let done = #rt::dw_pairs::<S, #kh, #kw, #sh, #sw, #dh, #dw, #slots, #taps>(
                simd, layer, input, &mut output, geom, units.clone(), span.clone(),
            );
            if done {
                return;
            }
        }
    } else {
        TokenStream::new()
    };
    quote! {
        #[inline(always)]
        #[allow(clippy::identity_op, clippy::erasing_op, clippy::modulo_one, clippy::absurd_extreme_comparisons, unused_comparisons, unused_assignments, unused_mut)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            let #rt::Args { input, mut output, scratch, h, w, wo, units, span, .. } = a;
            #pairs
            let lanes = S::F32_LANES;
            let plane_in = h * w;
            #zero_row
            #sweep
        }
    }
}

/// The sweep of a streaming plan (see [`run_stream`]) over `units` (a range of units: input
/// planes of `input`, `plane_in = h x w` floats apart, unit `u` at plane `u / groups x in + u %
/// groups`) and the output rows of `span`, into `output` (a `PlanesMut`, row 0 of each plane
/// the span's first row, `out_per_group` planes per unit from `units.start`); needs `simd`,
/// `zeros` (`w` zeros), `h`, `w`, `wo` and `lanes`, and reads its weights and biases from the
/// fields `w_field` / `b_field`.
pub fn stream_sweep(
    spec: &Spec,
    plan: &StreamPlan,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
) -> TokenStream {
    let rt = rt();
    let taps_at = in_place_taps(spec).expect("streaming plans read rows in place");
    let (g, m, slots) = (plan.units, spec.out_per_group(), plan.slots);
    let taps = spec.taps();
    let (groups, cin, sw) = (lit(spec.groups), lit(spec.in_channels), lit(spec.stride_w));
    let (g_l, m_l, slots_l, gm_l, mtaps) = (lit(g), lit(m), lit(slots), lit(g * m), lit(m * taps));
    let (sh_l, pt_l) = (lit(spec.stride_h), lit(spec.pad_top));
    let a = |s: usize, t: usize, k: usize| format_ident!("a_{}_{}_{}", s, t, k);

    // Per tile: each stream's unit, input plane, weights and bias.
    let mut setup = TokenStream::new();
    let mut planes = Vec::new();
    for s in 0..g {
        let (us, ps, ws, bs, wv) = (
            format_ident!("u_{}", s),
            format_ident!("plane_{}", s),
            format_ident!("wt_{}", s),
            format_ident!("bias_{}", s),
            format_ident!("wv_{}", s),
        );
        let sl = lit(s);
        let bias = (0..m).map(|t| {
            let t = lit(t);
            quote!(simd.splat_f32s(self.#b_field[#us % #groups * #m_l + #t]))
        });
        setup.extend(quote! {
            let #us = (u + #sl).min(last);
            let #ps = &input[(#us / #groups * #cin + #us % #groups) * plane_in..][..plane_in];
            let #ws = &self.#w_field[#us % #groups * #mtaps..][..#mtaps];
            let #bs: [S::f32s; #m_l] = [#(#bias),*];
        });
        if plan.hoist > 0 {
            let splats = (0..plan.hoist).map(|i| {
                let i = lit(i);
                quote!(simd.splat_f32s(#ws[#i]))
            });
            let n = lit(plan.hoist);
            setup.extend(quote!(let #wv: [S::f32s; #n] = [#(#splats),*];));
        }
        planes.push(ps);
    }
    let weight = |s: usize, t: usize, ky: usize, kx: usize| {
        let i = widx(spec, t, 0, ky, kx);
        let hoisted = i < plan.hoist;
        let i = lit(i);
        if hoisted {
            let wv = format_ident!("wv_{}", s);
            quote!(#wv[#i])
        } else {
            let ws = format_ident!("wt_{}", s);
            quote!(simd.splat_f32s(#ws[#i]))
        }
    };

    // One step (one output row): for each of the `stride_h` input rows it brings, every
    // stream's row, then its FMAs into the slots that read it: input row `q` of step `n` is row
    // `(n - k) sh + ky dh` of output row `n - k` when `ky dh - q = k sh`.
    let sh = spec.stride_h;
    // A step's body: per input row `q` it loads (`rows_of(q)`: the rows' expression, `None`
    // when the step loads nothing there), every unit's vectors, then the FMAs of each slot `k`
    // reading it that `live(k)` keeps (`Some(None)`: always, `Some(Some(cond))`: when `cond`
    // holds, `None`: never).
    type Live = Option<Option<TokenStream>>;
    let step_with = |outside: Outside,
                     rows_of: &dyn Fn(usize) -> Option<TokenStream>,
                     live: &dyn Fn(usize) -> Live| {
        let mut body = TokenStream::new();
        for q in 0..sh {
            let Some(rows) = rows_of(q) else { continue };
            let reads: Vec<(usize, usize, Option<TokenStream>)> = stream_reads(spec, q)
                .filter_map(|(ky, k)| live(k).map(|cond| (ky, k, cond)))
                .collect();
            if reads.is_empty() {
                continue;
            }
            let mut row = TokenStream::new();
            for s in 0..g {
                row.extend(in_place_row(spec, &taps_at, s, 0, outside, false));
                for (ky, k, cond) in &reads {
                    let mut fmas = TokenStream::new();
                    for (kx, &(parity, shift)) in taps_at.iter().enumerate() {
                        let v = vec_name(spec, parity, shift);
                        for t in 0..m {
                            let (acc, w) = (a(s, t, *k), weight(s, t, *ky, kx));
                            fmas.extend(quote!(#acc = simd.mul_add_e_f32s(#v, #w, #acc);));
                        }
                    }
                    row.extend(match cond {
                        Some(cond) => quote!(if #cond { #fmas }),
                        None => fmas,
                    });
                }
            }
            body.extend(quote! {
                {
                    let rows = #rows;
                    #row
                }
            });
        }
        body
    };
    // Steady steps (every slot live, every row in the plane) read their rows through
    // `StreamSteps`; guarded ones check both at run time.
    let steady_step = |outside: Outside| {
        step_with(
            outside,
            &|q| {
                let q = lit(q);
                Some(quote!(step_rows.row::<#q>()))
            },
            &|_| Some(None),
        )
    };
    let guarded_step = |outside: Outside| {
        step_with(
            outside,
            &|q| {
                let q = lit(q);
                Some(quote!(src.row(((oy0 + n) * #sh_l + #q) as isize - #pt_l as isize)))
            },
            &|k| {
                let k = lit(k);
                Some(Some(quote!(n >= #k && n - #k < nrows)))
            },
        )
    };
    let steps = |outside: Outside| (steady_step(outside), guarded_step(outside));

    let mut zero = TokenStream::new();
    let mut start = TokenStream::new();
    let mut stores = TokenStream::new();
    let mut shift = TokenStream::new();
    for s in 0..g {
        for t in 0..m {
            for k in 0..slots {
                let acc = a(s, t, k);
                zero.extend(quote!(let mut #acc = simd.splat_f32s(0.0);));
            }
            let (first, oldest) = (a(s, t, 0), a(s, t, slots - 1));
            let (bs, tl, st) = (format_ident!("bias_{}", s), lit(t), lit(s * m + t));
            start.extend(quote!(#first = #bs[#tl];));
            let v = format_ident!("v");
            let act = activate(spec.act, &v);
            stores.extend(quote! {
                let mut #v = #oldest;
                #act
                st.st::<#st>(simd, n + 1 - #slots_l, #v);
            });
            for k in (1..slots).rev() {
                let (to, from) = (a(s, t, k), a(s, t, k - 1));
                shift.extend(quote!(#to = #from;));
            }
        }
    }
    // The span's first `slots - 1` steps and last `slots - 1` steps unrolled (`plan.ends`),
    // every guard decided here: the first steps' slots `k > n` hold no row yet, the last
    // steps' slots `k <= j` (step `nrows + j`) are past the span, and rows outside the plane
    // are zeros, neither loaded nor multiplied. Which rows lie outside depends on how many
    // input rows lie above the first step's (`above`) and from the last step's first row to
    // the plane's end (`below`, counted up to `b_max`), one copy for each count in the plan.
    let b_max = (slots - 1) * sh;
    let end_steps = |outside: Outside, end: End| {
        let mut body = TokenStream::new();
        for i in 0..slots - 1 {
            let il = lit(i);
            let step = match end {
                End::Top(_) => quote!(oy0 + #il),
                End::Bottom(_) => quote!(oy0 + nrows + #il),
            };
            let fmas = step_with(
                outside,
                &|q| {
                    end.loads(i * sh + q).then(|| {
                        let q = lit(q);
                        quote!(src.row_in((#step) * #sh_l + #q - #pt_l))
                    })
                },
                &|k| end.live(i, k).then_some(None),
            );
            // The first steps store nothing yet; each last step stores the row it completes.
            body.extend(match end {
                End::Top(_) => quote!(#start #fmas #shift),
                End::Bottom(_) => quote! {
                    {
                        let n = nrows + #il;
                        #fmas
                        #stores
                        #shift
                    }
                },
            });
        }
        body
    };
    let pick = |arms: Vec<(usize, TokenStream)>, of: TokenStream| {
        let mut arms = arms.into_iter().rev();
        let (_, last) = arms.next().expect("one arm at least");
        arms.fold(last, |rest, (v, body)| {
            let v = lit(v);
            quote!(if #of == #v { #body } else { #rest })
        })
    };
    // One vector of output columns from `ox`, with the steps of `outside`.
    let column = |outside: Outside| {
        let (steady_v, guarded_v) = steps(outside);
        let head = quote! {
            let len = (wo - ox).min(lanes);
            let cols = &#rt::InCols::new(simd, #sw * ox, w);
            let mut st = out.col_stores::<S, #gm_l>(simd, ox, wo, len, nrows);
            #zero
        };
        // With unrolled ends, a span that meets the plane's edges as they expect runs its first
        // steps unrolled (`peel`), then the steady loop, then its last steps unrolled.
        let (peel_head, peel_tail) = match &plan.ends {
            None => (quote!(), quote!()),
            Some(ends) => {
                let b_l = ends.belows.iter().map(|&b| lit(b));
                let (a_l, b_max_l, first_l) = (lit(ends.above), lit(b_max), lit(slots - 1));
                let pro = end_steps(outside, End::Top(ends.above));
                let epi = pick(
                    ends.belows
                        .iter()
                        .map(|&b| (b, end_steps(outside, End::Bottom(b))))
                        .collect(),
                    quote!(below),
                );
                let peel_head = quote! {
                    let above = (#pt_l as usize).saturating_sub(oy0 * #sh_l);
                    let below = (h + #pt_l).saturating_sub((oy0 + nrows) * #sh_l).min(#b_max_l);
                    let peel = steady.start == #first_l
                        && steady.end == nrows
                        && nrows > #first_l
                        && above == #a_l
                        && (false #(|| below == #b_l)*);
                    if peel {
                        #pro
                        n = #first_l;
                    }
                };
                let peel_tail = quote! {
                    if peel {
                        #epi
                        n = total;
                    }
                };
                (peel_head, peel_tail)
            }
        };
        // Every other step through the guarded body; the steady ones run in a loop of their
        // own, their rows one pointer bump apart. Their stores keep `ColStores`' checks (row in
        // range, plane in the view): making them unconditional (repeated units storing into the
        // last unit's planes, the row range checked once per loop) took the 3x3 steady loop
        // from about 19 scalar instructions a step to 8 and ran level (384 x 14 x 14 13.0-14.0
        // us either way, 5x5 on 240 x 14 x 14 level, six alternating rounds): a 2-channel step
        // is 18 FMAs, 4 shifts and 2 masked loads on the two ports that take them, about 12
        // cycles, and ran at 13-15.
        quote! {
            #head
            let total = nrows + #slots_l - 1;
            let first_steady = if steady.is_empty() { total } else { steady.start };
            let mut n = 0;
            #peel_head
            while n < total {
                if n == first_steady {
                    let iy0 = (oy0 + n) * #sh_l - #pt_l;
                    for step_rows in src.steps::<#sh_l>(iy0, steady.end - n) {
                        #start
                        #steady_v
                        #stores
                        #shift
                        n += 1;
                    }
                    #peel_tail
                    continue;
                }
                #start
                #guarded_v
                if n + 1 >= #slots_l {
                    #stores
                }
                #shift
                n += 1;
            }
        }
    };
    let general = column(Outside::NONE);
    let general = quote! {
        let mut ox = 0;
        while ox < wo {
            #general
            ox += lanes;
        }
    };
    // Stride 1 on rows of one or two vectors (`w` and `wo` at most two vectors: 28 x 28 and
    // narrower planes on AVX-512): a neighbour vector lying wholly outside the row is zeros, not
    // a masked load that reads nothing (on AVX-512 a masked load costs a vector ALU uop beside
    // the load, on the ports the FMAs need): the left one of the first vector, the right one of
    // the last. Throwaway timer, data in L2, minimum of interleaved runs, AVX-512, before ->
    // after: 3x3 on 384 channels 14 x 14 18.4 -> 15.3 us, 7 x 7 10.4 -> 8.8, 28 x 28 89-92 ->
    // 86-90; 5x5 on 240 channels 14 x 14 28.4 -> 27.0, 7 x 7 17.2 -> 15.2, 28 x 28 102-105 ->
    // 95-97. Loading the one-vector row plainly instead (lanes past the row hold the next row)
    // and dropping the columns outside the row in FMAs under a merge mask, as flat tiles do
    // (`FlatSrc::unmasked`), was slower here: a 2-channel step of 3x3 on 384 x 14 x 14 took
    // 13.3-13.7 cycles (at a nominal 2.66 GHz) against 16.1-16.5 with a plain load per tap and
    // 16.5 with one plain load and the shifts (throwaway timer, data in L2, six alternating runs
    // each). Presumably the stream's accumulators, FMA chains nine long across three steps,
    // feel the masked FMAs where the flat tiles' many independent accumulators do not. The row
    // tiles' edge forms (`InnerCols::left` / `right`: plain loads, shifts against zeros) gave
    // these two-vector rows nothing either (384 x 28 x 28: 3x3 84-88 -> 84-86 us, 7x7 246-251 ->
    // 252-254): the steps wait on their accumulator chains, not on the masks' ports.
    let columns = if spec.stride_w == 1 {
        let single = column(Outside {
            left: true,
            right: true,
        });
        let first = column(Outside {
            left: true,
            right: false,
        });
        let second = column(Outside {
            left: false,
            right: true,
        });
        quote! {
            if w <= lanes && wo <= lanes {
                let ox = 0;
                #single
            } else if w <= 2 * lanes && wo <= 2 * lanes && wo > lanes {
                let ox = 0;
                { #first }
                let ox = lanes;
                { #second }
            } else {
                #general
            }
        }
    } else {
        general
    };
    quote! {
        let (oy0, nrows) = (span.start, span.end - span.start);
        if !units.is_empty() {
            let last = units.end - 1;
            let mut u = units.start;
            while u < units.end {
                #setup
                let src = #rt::StreamRows::<#g_l>::new([#(#planes),*], zeros, h, w);
                // Steps with every slot live and every row loaded in the plane.
                let steady = {
                    let inside = src.inside_steps(oy0, #sh_l, #pt_l);
                    inside.start.max(#slots_l - 1)..inside.end.min(nrows)
                };
                let count = (units.end - u).min(#g_l);
                let mut out = output.planes((u - units.start) * #m_l, count * #m_l);
                #columns
                u += #g_l;
            }
        }
    }
}

/// Binds `zeros` to the first `w` floats of `scratch`, zeroed: the padding rows of tiles that
/// read the input in place.
fn zero_row() -> TokenStream {
    quote! {
        let zeros = &mut scratch[..w];
        zeros.fill(0.0);
        let zeros: &[f32] = zeros;
    }
}

/// The pieces of a direct stage that a body arranges: tile functions, the per output-channel
/// tile setup, and the sweep over a run of output rows.
pub struct Stage {
    /// The tile functions (items).
    pub tiles: TokenStream,
    /// Needs `oc0` (first output channel of the tile) and `simd`; binds the tile's weights and
    /// bias from the fields `w_field` / `b_field`.
    pub setup: TokenStream,
    /// Computes `rows` output rows into `out` (the tile's output channel planes, a `PlanesMut`)
    /// from row `oy_base` of `out`; needs `wo` and `lanes`. Band plans also need `band` and
    /// `buf` (the band, filled for those rows); in-place plans need `planes` (the group's input
    /// planes), `zeros` (`w` zeros), `h`, `w` and `oy0` (the output row of the first of them).
    pub sweeps: TokenStream,
}

/// The direct stage of `plan`, its tile functions named `{prefix}_r{rows}`.
pub fn stage(
    spec: &Spec,
    plan: &DirectPlan,
    prefix: &str,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
) -> Stage {
    assert!(!plan.flat, "flat plans have their own sweep (run_flat)");
    let rt = rt();
    let setup = tile_setup(spec, plan, w_field, b_field);
    let warg = if plan.hoist_weights {
        quote!(&wv)
    } else {
        quote!(wt)
    };

    let mut tiles = TokenStream::new();
    let mut sizes = vec![plan.rows];
    sizes.extend(plan.rem_rows.iter().copied());
    let mut sweeps = quote!(let mut r = 0;);
    // Stride-1 in-place tiles also come in an inner form (see `InnerCols`).
    let inner_cols =
        inner_span(spec).filter(|_| plan.in_place && matches!(plan.unroll, Unroll::Full));
    if inner_cols.is_some() {
        sweeps.extend(quote!(let inner = #rt::InnerCols::pay::<S>(planes, w);));
    }
    let (cpg_in, sh, sw, pt) = (
        lit(spec.in_per_group()),
        lit(spec.stride_h),
        lit(spec.stride_w),
        lit(spec.pad_top),
    );
    for &rows in &sizes {
        let tf = format_ident!("{}_r{}", prefix, rows);
        tiles.extend(tile_fn(spec, plan, rows, Cols::Masked, &tf));
        let rl = lit(rows);
        let carry = carry_mode(spec, plan, Cols::Masked);
        let carry_arg = match carry {
            true => quote!(, &mut carry),
            false => quote!(),
        };
        let (source, row_setup) = if plan.in_place {
            let rin = lit(rows_in(spec, rows));
            (
                quote!(&in_rows, &#rt::InCols::new(simd, #sw * ox, w) #carry_arg),
                quote! {
                    let iy0 = ((oy0 + r) * #sh) as isize - #pt as isize;
                    let in_rows = #rt::InRows::<#cpg_in, #rin>::new(planes, zeros, h, w, iy0);
                },
            )
        } else {
            (quote!(&band, buf, r), quote!())
        };
        let tile = quote!(#tf(simd, #source, ox, len, out, oy_base + r, wo, #warg, &bias););
        let carry_init = match carry {
            true => {
                let n = lit(plan.oc_tile * rows);
                quote!(let mut carry = [simd.splat_f32s(0.0); #n];)
            }
            false => quote!(),
        };
        let columns = |tile: &TokenStream| {
            quote! {
                #carry_init
                let mut ox = 0;
                while ox < wo {
                    let len = (wo - ox).min(lanes);
                    #tile
                    ox += lanes;
                }
            }
        };
        let mut sweep = columns(&tile);
        if let Some(extra) = s2_inner(spec, plan) {
            // Vectors whose every pair lies inside the row: plain loads (see `s2_inner`).
            let tf_in = format_ident!("{}_r{}_in", prefix, rows);
            tiles.extend(tile_fn(spec, plan, rows, Cols::Inner, &tf_in));
            let extra = isize_lit(extra);
            sweep = columns(&quote! {
                if let Some(cols) = #rt::InnerCols::new::<S>(2 * ox, w, 0, lanes as isize + #extra) {
                    #tf_in(simd, &in_rows, &cols #carry_arg, ox, len, out, oy_base + r, wo, #warg, &bias);
                } else {
                    #tile
                }
            });
        }
        if let Some((lo, hi)) = inner_cols {
            // Vectors whose every tap reads inside the row: plain loads (see `InnerCols`).
            let tf_in = format_ident!("{}_r{}_in", prefix, rows);
            tiles.extend(tile_fn(spec, plan, rows, Cols::Inner, &tf_in));
            let (lo, hi) = (isize_lit(lo), isize_lit(hi));
            let inner_tile = quote! {
                if let Some(cols) = #rt::InnerCols::new::<S>(ox, w, #lo, #hi) {
                    #tf_in(simd, &in_rows, &cols, ox, len, out, oy_base + r, wo, #warg, &bias);
                } else {
                    #tile
                }
            };
            // The row's first and last whole vectors: plain loads, and shifts against zeros
            // for the taps past the row's end (see `InnerCols::left` / `right`). Only in the
            // full row tile: the others run on a plane's last rows at most.
            let mixed_tile = if rows == plan.rows {
                let (tf_l, tf_r) = (
                    format_ident!("{}_r{}_l", prefix, rows),
                    format_ident!("{}_r{}_r", prefix, rows),
                );
                tiles.extend(tile_fn(spec, plan, rows, Cols::Left, &tf_l));
                tiles.extend(tile_fn(spec, plan, rows, Cols::Right, &tf_r));
                quote! {
                    if let Some(cols) = #rt::InnerCols::left::<S>(ox, w, wo, #lo, #hi) {
                        #tf_l(simd, &in_rows, &cols, ox, len, out, oy_base + r, wo, #warg, &bias);
                    } else if let Some(cols) = #rt::InnerCols::right::<S>(ox, w, wo, #lo, #hi) {
                        let ox = cols.c0();
                        #tf_r(simd, &in_rows, &cols, ox, lanes, out, oy_base + r, wo, #warg, &bias);
                    } else {
                        #inner_tile
                    }
                }
            } else {
                inner_tile
            };
            // The plain column loop stays as it was where inner tiles do not pay: with both
            // tile forms in one loop, that loop ran 5% slower on aligned 112-wide rows (2
            // threads, 32 x 112 x 112), presumably its register allocation.
            let mixed = columns(&mixed_tile);
            sweep = quote! {
                if inner {
                    #mixed
                } else {
                    #sweep
                }
            };
        }
        sweeps.extend(quote! {
            while r + #rl <= rows {
                #row_setup
                #sweep
                r += #rl;
            }
        });
    }
    Stage {
        tiles,
        setup,
        sweeps,
    }
}

/// Binds a tile's weights (`wt`, or `wv` splatted when hoisted) and `bias` for output channel
/// `oc0` from the fields `w_field` / `b_field`; needs `simd`.
fn tile_setup(
    spec: &Spec,
    plan: &DirectPlan,
    w_field: &syn::Ident,
    b_field: &syn::Ident,
) -> TokenStream {
    let oct = plan.oc_tile;
    let oct_l = lit(oct);
    let nw = spec.in_per_group() * spec.taps() * oct;
    let nw_l = lit(nw);

    let bias_splats = (0..oct).map(|t| {
        let t = lit(t);
        quote!(simd.splat_f32s(self.#b_field[oc0 + #t]))
    });
    let wparam_def = if plan.hoist_weights {
        let splats = (0..nw).map(|i| {
            let i = lit(i);
            quote!(simd.splat_f32s(wt[#i]))
        });
        quote! { let wv: [S::f32s; #nw_l] = [#(#splats),*]; }
    } else {
        quote! {}
    };
    quote! {
        let wt = &self.#w_field[oc0 * (#nw_l / #oct_l)..][..#nw_l];
        #wparam_def
        let bias: [S::f32s; #oct_l] = [#(#bias_splats),*];
    }
}

/// The names and literals both `__run_rNN` bodies (band and in place) start from.
struct RunNames {
    f: syn::Ident,
    cpg_in: proc_macro2::Literal,
    cpg_out: proc_macro2::Literal,
    groups: proc_macro2::Literal,
    cin: proc_macro2::Literal,
    /// Output channels per tile, and tiles per group.
    oct_l: proc_macro2::Literal,
    noct: proc_macro2::Literal,
}

impl RunNames {
    /// Names the method `__run{suffix}_rNN`.
    fn new(spec: &Spec, plan: &DirectPlan, suffix: &str) -> Self {
        RunNames {
            f: format_ident!("__run{}_r{}", suffix, plan.regs),
            cpg_in: lit(spec.in_per_group()),
            cpg_out: lit(spec.out_per_group()),
            groups: lit(spec.groups),
            cin: lit(spec.in_channels),
            oct_l: lit(plan.oc_tile),
            noct: lit(spec.out_per_group() / plan.oc_tile),
        }
    }
}

/// The `__run_rNN` method for one plan.
fn run(spec: &Spec, plan: &DirectPlan, suffix: &str) -> TokenStream {
    let rt = rt();
    let RunNames {
        f,
        cpg_in,
        cpg_out,
        groups,
        cin,
        oct_l,
        noct,
    } = RunNames::new(spec, plan, suffix);
    let rows_l = lit(plan.rows);
    let Stage {
        tiles,
        setup,
        sweeps,
    } = stage(spec, plan, "tile", &format_ident!("w"), &format_ident!("b"));

    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #tiles

            let #rt::Args { input, mut output, scratch, h, w, ho, wo, units, span, .. } = a;
            let lanes = S::F32_LANES;
            let band = #rt::Band::new(&<Self as #rt::Generated>::GEOMETRY, #cpg_in, lanes, ho, wo, #rows_l);
            let plane_in = h * w;
            let scratch = band.buf(scratch);
            band.clear(scratch);
            for u in units.clone() {
                let (b, g) = (u / #groups, u % #groups);
                let planes = &input[(b * #cin + g * #cpg_in) * plane_in..][..#cpg_in * plane_in];
                let mut oy0 = span.start;
                while oy0 < span.end {
                    let rows = (span.end - oy0).min(band.out_rows);
                    band.fill(simd, planes, h, w, oy0, scratch);
                    let buf: &[f32] = scratch;
                    for t in 0..#noct {
                        let oc0 = g * #cpg_out + t * #oct_l;
                        #setup
                        let out = &mut output.planes((u - units.start) * #cpg_out + t * #oct_l, #oct_l);
                        let oy_base = oy0 - span.start;
                        #sweeps
                    }
                    oy0 += rows;
                }
            }
        }
    }
}

/// The `__run_rNN` method of an in-place plan (see `plan::in_place_taps`): per unit and
/// output-channel tile, row tiles read the input planes through `InRows` (padding rows from a
/// row of zeros in the scratch), one vector of output columns at a time.
fn run_in_place(spec: &Spec, plan: &DirectPlan, suffix: &str) -> TokenStream {
    let rt = rt();
    let zero_row = zero_row();
    let RunNames {
        f,
        cpg_in,
        cpg_out,
        groups,
        cin,
        oct_l,
        noct,
    } = RunNames::new(spec, plan, suffix);
    let Stage {
        tiles,
        setup,
        sweeps,
    } = stage(spec, plan, "tile", &format_ident!("w"), &format_ident!("b"));
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #tiles

            let #rt::Args { input, mut output, scratch, h, w, wo, units, span, .. } = a;
            let lanes = S::F32_LANES;
            let plane_in = h * w;
            #zero_row
            let (oy0, rows, oy_base) = (span.start, span.end - span.start, 0);
            for u in units.clone() {
                let (b, g) = (u / #groups, u % #groups);
                let planes = &input[(b * #cin + g * #cpg_in) * plane_in..][..#cpg_in * plane_in];
                for t in 0..#noct {
                    let oc0 = g * #cpg_out + t * #oct_l;
                    #setup
                    let out = &mut output.planes((u - units.start) * #cpg_out + t * #oct_l, #oct_l);
                    #sweeps
                }
            }
        }
    }
}

/// The `__run_rNN` method of a flat plan (see `plan::plan_flat`): one mask table for the call's
/// output pixels, then per unit and output-channel tile, tiles of `rows` vectors of consecutive
/// pixels across the span (and smaller ones for the rest), the last vector possibly partial.
fn run_flat(spec: &Spec, plan: &DirectPlan, suffix: &str) -> TokenStream {
    let rt = rt();
    let RunNames {
        f,
        cpg_in,
        cpg_out,
        groups,
        cin,
        oct_l,
        noct,
    } = RunNames::new(spec, plan, suffix);
    let taps = lit(spec.taps());
    let mut tiles = TokenStream::new();
    let mut sweeps = quote!(let mut v = 0;);
    let mut sizes = vec![plan.rows];
    sizes.extend(plan.rem_rows.iter().copied());
    assert_eq!(sizes.last(), Some(&1), "flat plans end with 1-vector tiles");
    for &r in &sizes {
        let tf = format_ident!("tile_r{}", r);
        tiles.extend(flat_tile_fn(spec, plan, r, &tf));
        let rl = lit(r);
        sweeps.extend(quote! {
            while v + #rl <= nvec {
                let len = if v + #rl == nvec { last } else { lanes };
                #tf(simd, &src, v, len, out, wt, &bias);
                v += #rl;
            }
        });
    }
    let setup = tile_setup(spec, plan, &format_ident!("w"), &format_ident!("b"));
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, clippy::int_plus_one, clippy::modulo_one)]
        fn #f<S: #rt::Simd>(&self, simd: S, a: #rt::Args<'_>) {
            #tiles

            let #rt::Args { input, mut output, scratch, h, w, wo, units, span, .. } = a;
            let lanes = S::F32_LANES;
            let plane_in = h * w;
            let (q_lo, q_hi) = (span.start * wo, span.end * wo);
            let flat = #rt::Flat::<#taps>::new(&<Self as #rt::Generated>::GEOMETRY, lanes, h, w, q_lo, q_hi, scratch);
            // Vectors of the span; the last holds `last` pixels.
            let nvec = (q_hi - q_lo).div_ceil(lanes);
            let last = (q_hi - q_lo) - (nvec.max(1) - 1) * lanes;
            for u in units.clone() {
                let (b, g) = (u / #groups, u % #groups);
                let src = flat.src::<#cpg_in>(input, (b * #cin + g * #cpg_in) * plane_in);
                for t in 0..#noct {
                    let oc0 = g * #cpg_out + t * #oct_l;
                    #setup
                    let out = &mut output.planes((u - units.start) * #cpg_out + t * #oct_l, #oct_l);
                    #sweeps
                }
            }
        }
    }
}

/// One flat tile of `rows` vectors of output pixels from vector `v`, `len` floats of its last
/// vector stored (`lanes`, or fewer for the span's last vector).
fn flat_tile_fn(spec: &Spec, plan: &DirectPlan, rows: usize, name: &syn::Ident) -> TokenStream {
    let rt = rt();
    let oct = plan.oc_tile;
    let oct_l = lit(oct);
    let cpg_in = spec.in_per_group();
    let (cpg_in_l, taps_l, rows_l) = (lit(cpg_in), lit(spec.taps()), lit(rows));
    let nw = lit(cpg_in * spec.taps() * oct);
    let (init, stores) = acc_init_and_stores(spec, oct, rows);
    // Per tap the vectors' masks, per input channel (a loop) the tile's loads, then one
    // broadcast and `rows` FMAs per output channel; taps a loop too for `Unroll::TileOnly`.
    // Two bodies: masked loads and plain FMAs (`tap`), or, for tiles whose loads all lie inside
    // the input on AVX-512, plain loads and FMAs under the masks (`unmasked`).
    let per_tap = |unmasked: bool| {
        let mut fmas = TokenStream::new();
        for r in 0..rows {
            let x = format_ident!("x_{}", r);
            let rl = lit(r);
            fmas.extend(quote!(let #x = tp.ld(simd, ic, #rl);));
        }
        for t in 0..oct {
            let w0 = lit(t * cpg_in * spec.taps());
            fmas.extend(quote!(let wk = simd.splat_f32s(wt[#w0 + ic * #taps_l + tap]);));
            for r in 0..rows {
                let a = acc(t, r, 0);
                let x = format_ident!("x_{}", r);
                fmas.extend(if unmasked {
                    let rl = lit(r);
                    quote!(#a = tp.fma(simd, #rl, #x, wk, #a);)
                } else {
                    quote!(#a = simd.mul_add_e_f32s(#x, wk, #a);)
                });
            }
        }
        let tp = if unmasked {
            quote!(let tp = un.tap(simd, tap);)
        } else {
            quote!(let tp = src.tap::<S, #rows_l>(simd, v, tap);)
        };
        // The input channels in steps of `step` (see `flat_ic_step`), each step's channels
        // unrolled.
        let step = if unmasked {
            flat_ic_step(spec, plan.regs, oct, rows)
        } else {
            1
        };
        if step == 1 {
            return quote! {
                #tp
                for ic in 0..#cpg_in_l {
                    #fmas
                }
            };
        }
        let step_l = lit(step);
        let steps = lit(cpg_in / step);
        let chans = (0..step).map(|j| {
            let j = lit(j);
            quote!({
                let ic = icp * #step_l + #j;
                #fmas
            })
        });
        quote! {
            #tp
            for icp in 0..#steps {
                #(#chans)*
            }
        }
    };
    let body = |unmasked: bool| match plan.unroll {
        Unroll::TileOnly => {
            let per_tap = per_tap(unmasked);
            quote! {
                for tap in 0..#taps_l {
                    #per_tap
                }
            }
        }
        // Taps unrolled (the narrow depthwise plans: one FMA per load, the loop's overhead
        // would be a large share).
        _ => (0..spec.taps())
            .map(|tap| {
                let tap = lit(tap);
                let per_tap = per_tap(unmasked);
                quote! {{
                    let tap = #tap;
                    #per_tap
                }}
            })
            .collect(),
    };
    let (masked, unmasked) = (body(false), body(true));
    let body = quote! {
        if let Some(un) = src.unmasked::<S, #rows_l>(v) {
            #unmasked
        } else {
            #masked
        }
    };
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, unused_variables)]
        fn #name<S: #rt::Simd>(
            simd: S,
            src: &#rt::FlatSrc<'_, #cpg_in_l, #taps_l>,
            v: usize,
            len: usize,
            out: &mut #rt::PlanesMut<'_>,
            wt: &[f32],
            bias: &[S::f32s; #oct_l],
        ) {
            let wt = &wt[..#nw];
            #init
            #body
            let lanes = S::F32_LANES;
            let mut stores = out.tile_stores_last::<S, #oct_l, #rows_l>(simd, v * lanes, lanes, len);
            #stores
        }
    }
}

/// The accumulators of a tile of `oct` output channels x `rows` rows (vectors): each set to its
/// channel's `bias`, and each activated and stored through `stores` at the end.
fn acc_init_and_stores(spec: &Spec, oct: usize, rows: usize) -> (TokenStream, TokenStream) {
    let accs: Vec<_> = (0..oct)
        .flat_map(|t| (0..rows).map(move |r| (t, r)))
        .collect();
    let init = accs.iter().map(|&(t, r)| {
        let a = acc(t, r, 0);
        let t = lit(t);
        quote!(let mut #a = bias[#t];)
    });
    let stores = accs.iter().map(|&(t, r)| {
        let a = acc(t, r, 0);
        let act = activate(spec.act, &a);
        let (t, r) = (lit(t), lit(r));
        quote! {
            #act
            stores.st::<#t, #r>(simd, #a);
        }
    });
    (quote!(#(#init)*), quote!(#(#stores)*))
}

/// Index of weight `(t, ic, ky, kx)` in a tile's weight slice (PyTorch order).
fn widx(spec: &Spec, t: usize, ic: usize, ky: usize, kx: usize) -> usize {
    ((t * spec.in_per_group() + ic) * spec.kernel_h + ky) * spec.kernel_w + kx
}

/// One register tile of `rows` output rows.
fn tile_fn(
    spec: &Spec,
    plan: &DirectPlan,
    rows: usize,
    form: Cols,
    name: &syn::Ident,
) -> TokenStream {
    let rt = rt();
    let oct = plan.oc_tile;
    let oct_l = lit(oct);
    let nw = lit(spec.in_per_group() * spec.taps() * oct);
    let (sh, sw) = (spec.stride_h, spec.stride_w);
    let (dh, dw) = (spec.dilation_h, spec.dilation_w);
    let (kh, kw) = (spec.kernel_h, spec.kernel_w);
    let cpg_in = spec.in_per_group();

    let (init, stores) = acc_init_and_stores(spec, oct, rows);
    let rows_l = lit(rows);

    // The weight operand of tap (t, ic, ky, kx); `ic` is a literal or the loop variable.
    let weight = &|t: usize, ic: Option<usize>, ky: usize, kx: usize| -> TokenStream {
        match ic {
            Some(ic) => {
                let i = lit(widx(spec, t, ic, ky, kx));
                if plan.hoist_weights {
                    quote!(wv[#i])
                } else {
                    quote!(simd.splat_f32s(wt[#i]))
                }
            }
            None => {
                let i = lit(widx(spec, t, 0, ky, kx));
                let taps = lit(spec.taps());
                quote!(simd.splat_f32s(wt[#i + ic * #taps]))
            }
        }
    };

    // Row-sharing body of one input channel: for each kx, load every input row the tile reads
    // once, then feed each (row, ky) pair that reads it.
    let shared_body = |ic: Option<usize>| -> TokenStream {
        let mut body = TokenStream::new();
        for kx in 0..kw {
            let phase = lit((kx * dw) % sw);
            let off = lit((kx * dw) / sw);
            let nrows = rows_in(spec, rows);
            let mut used = vec![false; nrows];
            for r in 0..rows {
                for ky in 0..kh {
                    used[r * sh + ky * dh] = true;
                }
            }
            for (j, _) in used.iter().enumerate().filter(|(_, u)| **u) {
                let x = format_ident!("x_{}_{}", kx, j);
                let j = lit(j);
                body.extend(match ic {
                    Some(ic) => {
                        let ic = lit(ic);
                        quote!(let #x = tile.ld::<S, #ic, #j, #phase, #off>(simd);)
                    }
                    None => quote!(let #x = tile.ld_chan::<S, #j, #phase, #off>(simd, ic);),
                });
            }
            for ky in 0..kh {
                for t in 0..oct {
                    let wk = format_ident!("w_{}_{}_{}", t, ky, kx);
                    let wop = weight(t, ic, ky, kx);
                    body.extend(quote!(let #wk = #wop;));
                    for r in 0..rows {
                        let a = acc(t, r, 0);
                        let x = format_ident!("x_{}_{}", kx, r * sh + ky * dh);
                        body.extend(quote!(#a = simd.mul_add_e_f32s(#x, #wk, #a);));
                    }
                }
            }
        }
        body
    };

    // The tile's window into the band: one bounds check, then unchecked constant-index loads.
    let phases = (0..kw).map(|kx| (kx * dw) % sw).max().unwrap_or(0) + 1;
    let reach = (0..kw).map(|kx| (kx * dw) / sw).max().unwrap_or(0);
    let dh_l = lit(dh);
    let (chans_l, rin_l, phases_l, reach_l, sh_l) = (
        lit(cpg_in),
        lit(rows_in(spec, rows)),
        lit(phases),
        lit(reach),
        lit(sh),
    );
    let window = quote! {
        let tile = band.tile::<S, #chans_l, #rin_l, #phases_l, #reach_l>(buf, r0 * #sh_l, ox);
    };
    let body = match plan.unroll {
        Unroll::Full if plan.in_place => in_place_body(spec, plan, rows, form, &weight),
        Unroll::Full => {
            let mut b = window.clone();
            for ic in 0..cpg_in {
                b.extend(shared_body(Some(ic)));
            }
            b
        }
        Unroll::TapsOnly => {
            let inner = shared_body(None);
            let cpg_in = lit(cpg_in);
            quote! {
                #window
                for ic in 0..#cpg_in {
                    #inner
                }
            }
        }
        Unroll::TileOnly => {
            let mut fmas = TokenStream::new();
            for t in 0..oct {
                let wk = format_ident!("w_{}", t);
                let t0 = lit(t * cpg_in * spec.taps());
                fmas.extend(quote!(let #wk = simd.splat_f32s(wt[#t0 + tap]);));
            }
            for r in 0..rows {
                let x = format_ident!("x_{}", r);
                let roff = lit(r * sh);
                fmas.extend(
                    quote!(let #x = tile.ld_dyn(simd, ic, #roff + ky * #dh_l, phase, off);),
                );
                for t in 0..oct {
                    let a = acc(t, r, 0);
                    let wk = format_ident!("w_{}", t);
                    fmas.extend(quote!(#a = simd.mul_add_e_f32s(#x, #wk, #a);));
                }
            }
            let (cpg_in, kh_l, kw_l, taps) = (lit(cpg_in), lit(kh), lit(kw), lit(spec.taps()));
            // Phase and offset of tap kx in the band (see `Band`); plain `kx * dw` at stride 1.
            let (phase, off) = if sw == 1 {
                let dw = lit(dw);
                (quote!(0), quote!(kx * #dw))
            } else {
                let (sw, dw) = (lit(sw), lit(dw));
                (quote!((kx * #dw) % #sw), quote!((kx * #dw) / #sw))
            };
            quote! {
                #window
                for ic in 0..#cpg_in {
                    for ky in 0..#kh_l {
                        for kx in 0..#kw_l {
                            let tap = ic * #taps + ky * #kw_l + kx;
                            let (phase, off) = (#phase, #off);
                            #fmas
                        }
                    }
                }
            }
        }
    };

    let wparam = if plan.hoist_weights {
        quote!(wv: &[S::f32s; #nw])
    } else {
        quote!(wt: &[f32])
    };
    let source = if plan.in_place {
        let (chans, rin) = (lit(cpg_in), lit(rows_in(spec, rows)));
        let cols = match form {
            Cols::Masked => quote!(#rt::InCols<S>),
            _ => quote!(#rt::InnerCols),
        };
        let carry = match carry_mode(spec, plan, form) {
            true => {
                let n = lit(oct * rows);
                quote!(, carry: &mut [S::f32s; #n])
            }
            false => quote!(),
        };
        quote!(rows: &#rt::InRows<'_, #chans, #rin>, cols: &#cols #carry)
    } else {
        quote!(band: &#rt::Band, buf: &[f32], r0: usize)
    };
    let wslice = if plan.hoist_weights {
        quote!()
    } else {
        quote!(let wt = &wt[..#nw];)
    };
    quote! {
        #[inline(always)]
        #[allow(clippy::too_many_arguments, clippy::identity_op, clippy::erasing_op, unused_variables)]
        fn #name<S: #rt::Simd>(
            simd: S,
            #source,
            ox: usize,
            len: usize,
            out: &mut #rt::PlanesMut<'_>,
            oy: usize,
            wo: usize,
            #wparam,
            bias: &[S::f32s; #oct_l],
        ) {
            #wslice
            #init
            #body
            let mut stores = out.tile_stores::<S, #oct_l, #rows_l>(simd, oy * wo + ox, wo, len);
            #stores
        }
    }
}

/// The body of an in-place tile: per input channel and input row, the vectors its taps read
/// ([`in_place_row`]), then every FMA that reads that row.
fn in_place_body(
    spec: &Spec,
    plan: &DirectPlan,
    rows: usize,
    form: Cols,
    weight: &dyn Fn(usize, Option<usize>, usize, usize) -> TokenStream,
) -> TokenStream {
    let taps_at = in_place_taps(spec).expect("in-place plans have in-place taps");
    let (sh, dh, kh) = (spec.stride_h, spec.dilation_h, spec.kernel_h);
    let carry = carry_mode(spec, plan, form);
    let mut body = TokenStream::new();
    if carry {
        for t in 0..plan.oc_tile {
            for r in 0..rows {
                let l = lo_acc(t, r);
                body.extend(quote!(let mut #l = simd.splat_f32s(0.0);));
            }
        }
    }
    for ic in 0..spec.in_per_group() {
        for j in 0..rows_in(spec, rows) {
            // The (output row, ky) pairs that read input row j.
            let uses: Vec<(usize, usize)> = (0..rows)
                .flat_map(|r| (0..kh).map(move |ky| (r, ky)))
                .filter(|&(r, ky)| r * sh + ky * dh == j)
                .collect();
            if uses.is_empty() {
                continue;
            }
            body.extend(match form {
                Cols::Masked => in_place_row(spec, &taps_at, ic, j, Outside::NONE, carry),
                _ if spec.stride_w == 2 => inner_row_s2(spec, &taps_at, ic, j),
                _ => inner_row(spec, &taps_at, ic, j, form),
            });
            for &(r, ky) in &uses {
                for (kx, &(parity, shift)) in taps_at.iter().enumerate() {
                    // Carry mode: a tap one lane left reads its parity vector unshifted into
                    // the row's own accumulator, shifted once at the end (see `carries`).
                    let (v, to_lo) = match carry && shift == -1 {
                        true => (vec_name(spec, parity, 0), true),
                        false => (vec_name(spec, parity, shift), false),
                    };
                    for t in 0..plan.oc_tile {
                        let a = if to_lo { lo_acc(t, r) } else { acc(t, r, 0) };
                        let wop = weight(t, Some(ic), ky, kx);
                        body.extend(quote!(#a = simd.mul_add_e_f32s(#v, #wop, #a);));
                    }
                }
            }
        }
    }
    if spec.stride_w == 2 && form != Cols::Masked {
        // The inner form's lanes back in column order (see `s2_inner`).
        let rt = rt();
        for t in 0..plan.oc_tile {
            for r in 0..rows {
                let a = acc(t, r, 0);
                body.extend(quote!(#a = #rt::inner_order(simd, #a);));
                if carry {
                    let l = lo_acc(t, r);
                    body.extend(quote!(#l = #rt::inner_order(simd, #l);));
                }
            }
        }
    }
    if carry {
        let rt = rt();
        for t in 0..plan.oc_tile {
            for r in 0..rows {
                let (a, l) = (acc(t, r, 0), lo_acc(t, r));
                let i = lit(t * rows + r);
                body.extend(quote! {
                    #a = simd.add_f32s(#a, #rt::shift_prev(simd, #l, carry[#i]));
                    carry[#i] = #l;
                });
            }
        }
    }
    body
}

/// The accumulator of an in-place tile in carry mode ([`carries`]) for the taps one lane left
/// of channel `t`'s output row `r`.
fn lo_acc(t: usize, r: usize) -> syn::Ident {
    format_ident!("lo_{}_{}", t, r)
}

/// Whether the masked in-place tiles of `spec` run in carry mode: at stride 2, where a tap
/// reading one lane left of its parity vector (`lo` in `InRows`: the vector shifted up one
/// lane, the column before the pair shifted in) would cost a load and a permute per input row.
/// In carry mode those taps' products go unshifted into an accumulator of their own per output
/// row, which is shifted up one lane once, the same accumulator of the tile one vector to the
/// left (`carry`, zeros left of the row) supplying lane 0, and added to the row's sum. So a
/// tile's column loop runs left to right from the row's start.
pub fn carries(spec: &Spec) -> bool {
    spec.stride_w == 2 && in_place_taps(spec).is_some_and(|t| t.iter().any(|&(_, s)| s == -1))
}

/// Whether the tiles of `plan` in form `form` run in carry mode ([`carries`]): in-place tiles at
/// stride 2, the masked form and the inner one (`s2_inner`) alike.
fn carry_mode(spec: &Spec, plan: &DirectPlan, form: Cols) -> bool {
    plan.in_place && (form == Cols::Masked || spec.stride_w == 2) && carries(spec)
}

/// Stride 2 on 16 registers (AVX2): whether the in-place tiles of `plan` also come in an inner
/// form, for vectors of columns whose every pair lies inside the row, and how many columns past
/// the pair at `c0 = 2 ox0` its loads reach (`c0..c0 + 2 lanes + extra`). Each input row is then
/// two plain loads split by two in-lane shuffles (`InRows::pair_inner`), where the masked form
/// takes a cross-lane permute per split. The split leaves the lanes in a fixed order (`0 1 4 5
/// 2 3 6 7`), put right once per output vector before the store (`inner_order`). Taps one lane
/// left run in carry mode (see [`carries`]) in both forms, which alternate along a row: their
/// accumulator is put in order too before its shift. A tap one lane right reads a second pair
/// two columns right (`extra` 2), split the same way. Taking the taps one lane left from such a
/// pair two columns left instead of carries (two loads and a shuffle per input row against a
/// permute, a shift and an add per output row) measured slower: `mnv2_dw96_112_s2` 206-208
/// against 167 us (10th percentiles, throwaway timer, Zen 3), 144 x 56 x 56 stride 2 131
/// against 103.
fn s2_inner(spec: &Spec, plan: &DirectPlan) -> Option<isize> {
    if spec.stride_w != 2 || !plan.in_place || plan.regs != 16 {
        return None;
    }
    if !matches!(plan.unroll, Unroll::Full) {
        return None;
    }
    let taps_at = in_place_taps(spec)?;
    Some(if taps_at.iter().any(|t| t.1 > 0) {
        2
    } else {
        0
    })
}

/// Stride 2, the inner form ([`s2_inner`]): the vectors of input row `j` of channel `ic`, the
/// pair at offset 0 and, where taps read it, the pair two columns right, whose even and odd
/// vectors are those shifted one lane. Taps one lane left read the pair itself (carry mode).
fn inner_row_s2(spec: &Spec, taps_at: &[(usize, isize)], ic: usize, j: usize) -> TokenStream {
    let (icl, jl) = (lit(ic), lit(j));
    let mut body = TokenStream::new();
    for shift in [0isize, 1] {
        if shift != 0 && !taps_at.iter().any(|t| t.1 == shift) {
            continue;
        }
        let (e, o) = (vec_name(spec, 0, shift), vec_name(spec, 1, shift));
        let off = lit(2 * shift as usize);
        body.extend(quote!(let (#e, #o) = rows.pair_inner::<S, #icl, #jl, #off>(simd, cols);));
    }
    body
}

/// Stride 1, a vector of columns whose every tap reads inside the row (`InnerCols`): the
/// vector of each distinct tap offset of input row `j` of channel `ic`, one plain load each,
/// bound to its [`vec_name`]. In the edge forms (`form` `Left` / `Right`) the taps past the
/// row's end are the vector at offset 0 shifted against zeros instead.
fn inner_row(
    spec: &Spec,
    taps_at: &[(usize, isize)],
    ic: usize,
    j: usize,
    form: Cols,
) -> TokenStream {
    assert_eq!(spec.stride_w, 1, "inner columns are a stride-1 form");
    let (icl, jl) = (lit(ic), lit(j));
    let outside = |d: isize| match form {
        Cols::Left => d < 0,
        Cols::Right => d > 0,
        _ => false,
    };
    let mut body = TokenStream::new();
    let x0 = vec_name(spec, 0, 0);
    let mut made = Vec::new();
    if taps_at.iter().any(|t| outside(t.1)) {
        body.extend(quote!(let #x0 = rows.inner::<S, #icl, #jl, 0>(simd, cols);));
        made.push(0);
    }
    for &(parity, shift) in taps_at {
        if made.contains(&shift) {
            continue;
        }
        made.push(shift);
        let v = vec_name(spec, parity, shift);
        let d = isize_lit(shift);
        body.extend(match outside(shift) {
            true => quote!(let #v = rows.edge::<S, #icl, #jl, #d>(simd, cols, #x0);),
            false => quote!(let #v = rows.inner::<S, #icl, #jl, #d>(simd, cols);),
        });
    }
    body
}

/// Which columns an in-place tile's vector reads and how: any stride under masks, the plain-load
/// forms at stride 1 only (see `InnerCols`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cols {
    /// Any vector: the row's vector and its neighbours under masks, shifted (`InCols`).
    Masked,
    /// Every tap inside the row: plain loads.
    Inner,
    /// The row's first whole vector: plain loads, taps left of the row shifted against zeros.
    Left,
    /// The row's last whole vector: plain loads, taps right of the row shifted against zeros.
    Right,
}

/// The smallest and largest column offset of a stride-1 in-place layer's taps, when an inner
/// form of its tiles (`inner_row`) saves anything: when some tap reads a shifted vector.
fn inner_span(spec: &Spec) -> Option<(isize, isize)> {
    if spec.stride_w != 1 {
        return None;
    }
    let taps_at = in_place_taps(spec)?;
    let lo = taps_at.iter().map(|t| t.1).min()?.min(0);
    let hi = taps_at.iter().map(|t| t.1).max()?.max(0);
    (lo < 0 || hi > 0).then_some((lo, hi))
}

/// Which neighbours of a stride-1 vector of columns the code may take as lying wholly outside
/// the row (columns before 0, or from `w` on): zeros then, without a load.
#[derive(Clone, Copy)]
struct Outside {
    left: bool,
    right: bool,
}

impl Outside {
    const NONE: Outside = Outside {
        left: false,
        right: false,
    };
}

/// The vectors the taps of input row `j` of channel `ic` read, each bound to its [`vec_name`]:
/// at stride 2 the row's even/odd pair and its shifts by one lane, at stride 1 the row's vector,
/// its neighbours when a tap reaches into them (zeros where `outside` says they lie outside the
/// row), and its shifts.
fn in_place_row(
    spec: &Spec,
    taps_at: &[(usize, isize)],
    ic: usize,
    j: usize,
    outside: Outside,
    carry: bool,
) -> TokenStream {
    let (icl, jl) = (lit(ic), lit(j));
    let mut body = if spec.stride_w == 1 {
        let mut b = quote!(let x = rows.vec::<S, #icl, #jl, 0>(simd, cols););
        let zero = quote!(simd.splat_f32s(0.0));
        let left = match outside.left {
            true => zero.clone(),
            false => quote!(rows.vec::<S, #icl, #jl, { -1 }>(simd, cols)),
        };
        let right = match outside.right {
            true => zero,
            false => quote!(rows.vec::<S, #icl, #jl, 1>(simd, cols)),
        };
        if taps_at.iter().any(|t| t.1 < 0) {
            b.extend(quote!(let x_l = #left;));
        }
        if taps_at.iter().any(|t| t.1 > 0) {
            b.extend(quote!(let x_r = #right;));
        }
        b
    } else {
        quote!(let (x_e, x_o) = rows.pair::<S, #icl, #jl>(simd, cols);)
    };
    let mut made = Vec::new();
    for &(parity, shift) in taps_at {
        if made.contains(&(parity, shift)) || (carry && shift == -1) {
            continue;
        }
        made.push((parity, shift));
        let v = vec_name(spec, parity, shift);
        let pl = lit(parity);
        let (src, nb) = match (spec.stride_w, parity, shift < 0) {
            (1, _, true) => (quote!(x), quote!(x_l)),
            (1, _, false) => (quote!(x), quote!(x_r)),
            (_, 0, _) => (quote!(x_e), quote!()),
            _ => (quote!(x_o), quote!()),
        };
        body.extend(match shift {
            0 => quote!(let #v = #src;),
            _ if spec.stride_w == 1 => {
                let d = isize_lit(shift);
                quote!(let #v = rows.shifted::<S, #icl, #jl, #d>(simd, cols, #src, #nb);)
            }
            -1 => quote!(let #v = rows.lo::<S, #icl, #jl, #pl>(simd, cols, #src);),
            _ => quote!(let #v = rows.hi::<S, #icl, #jl, #pl>(simd, cols, #src);),
        });
    }
    body
}

/// The name of the vector of parity `parity` at shift `shift` in an in-place tile.
fn vec_name(spec: &Spec, parity: usize, shift: isize) -> syn::Ident {
    if spec.stride_w == 1 {
        return match shift {
            0 => format_ident!("x_0"),
            s if s < 0 => format_ident!("x_m{}", s.unsigned_abs()),
            s => format_ident!("x_p{}", s.unsigned_abs()),
        };
    }
    let p = if parity == 0 { "e" } else { "o" };
    match shift {
        0 => format_ident!("x_{}", p),
        -1 => format_ident!("x_{}_lo", p),
        _ => format_ident!("x_{}_hi", p),
    }
}
