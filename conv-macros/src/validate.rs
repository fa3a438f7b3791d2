//! Raw arguments -> [`Spec`]: one `check_*` function per rule, every error collected.
//!
//! Each rule reports into `errors` and returns what it could read, so a bad `groups` does not
//! hide a bad `pad`. Cross-key rules (divisibility, "same" padding, overflow) run only on keys
//! that were read successfully, so one mistake is never reported twice.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{Ident, Item, ItemStruct};

use crate::args::{self, push, RawArgs, Value};
use crate::spec::{Act, Spec};

type Errors = Option<syn::Error>;

/// Parses and validates `#[conv_kernel(attr)] item`.
///
/// On failure returns every error combined and, if the item is a struct, the struct, so
/// [`crate::fallback::stub`] can keep the rest of the user's crate compiling.
// The error is large, but it is built once per expansion, on the failure path only.
#[allow(clippy::result_large_err)]
pub fn layer(
    attr: TokenStream,
    item: TokenStream,
) -> Result<(Spec, ItemStruct), (syn::Error, Option<ItemStruct>)> {
    let mut errors = None;
    let raw = args::parse(attr);
    let spec = spec_from_args(&raw, &mut errors);
    if let Some(syntax) = raw.errors {
        // Syntax errors come first: they are usually the cause of the rest.
        let mut all = syntax;
        if let Some(rest) = errors {
            all.combine(rest);
        }
        errors = Some(all);
    }
    let strukt = check_item(item, &mut errors);
    match (errors, spec, strukt) {
        (None, Some(spec), Some(strukt)) => Ok((spec, strukt)),
        (Some(errors), _, strukt) => Err((errors, strukt)),
        // Every path that yields `None` pushes an error; keep that promise visible anyway.
        (None, _, strukt) => Err((
            syn::Error::new(Span::call_site(), "internal error in `#[conv_kernel]`"),
            strukt,
        )),
    }
}

/// A value read from the attribute, or a default, with the span errors about it point at.
#[derive(Clone, Copy)]
struct Field<T> {
    value: T,
    span: Span,
}

impl<T> Field<T> {
    fn default(value: T) -> Self {
        Field {
            value,
            span: Span::call_site(),
        }
    }
}

/// Padding as written, before `"same"` is resolved against the kernel.
#[derive(Clone, Copy)]
enum Pad {
    /// `[top, bottom, left, right]`.
    Explicit([usize; 4]),
    Same,
}

/// The first value given for each known key; `Some(None)` is a key whose value was malformed.
struct Given<'a> {
    values: Vec<(&'static str, Option<&'a Value>)>,
}

impl<'a> Given<'a> {
    /// `None`: absent. `Some(None)`: present, but its error is already reported.
    fn get(&self, key: &str) -> Option<Option<&'a Value>> {
        self.values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
}

fn spec_from_args(raw: &RawArgs, errors: &mut Errors) -> Option<Spec> {
    let mut given = Given { values: Vec::new() };
    let mut seen: Vec<&Ident> = Vec::new();
    for entry in &raw.entries {
        let Some(key) = check_known_key(&entry.key, errors) else {
            continue;
        };
        if check_unique_key(&entry.key, &seen, errors) {
            seen.push(&entry.key);
            given.values.push((key, entry.value.as_ref()));
        }
    }
    if !raw.malformed {
        check_required_keys(&given, errors);
    }

    // Each key on its own. `None` means "already reported" (or missing).
    let size = |key: &'static str, default: Option<usize>, errors: &mut Errors| match given.get(key)
    {
        None => default.map(Field::default),
        Some(None) => None,
        Some(Some(value)) => {
            let [one] = check_arity(key, value, &[1], errors)?[..] else {
                return None;
            };
            let n = check_integer(key, one, errors)?;
            check_nonzero(key, n, errors)
        }
    };
    let pair = |key: &'static str, default: Option<usize>, errors: &mut Errors| match given.get(key)
    {
        None => default.map(|d| [Field::default(d); 2]),
        Some(None) => None,
        Some(Some(value)) => match check_arity(key, value, &[1, 2], errors)?[..] {
            [one] => {
                let n = check_nonzero(key, check_integer(key, one, errors)?, errors)?;
                Some([n, n])
            }
            [a, b] => {
                let a = check_integer(key, a, errors).and_then(|n| check_nonzero(key, n, errors));
                let b = check_integer(key, b, errors).and_then(|n| check_nonzero(key, n, errors));
                Some([a?, b?])
            }
            _ => None,
        },
    };
    let separable = match given.get(args::SEPARABLE) {
        None => Some(false),
        Some(None) => None,
        Some(Some(value)) => check_bool(args::SEPARABLE, value, errors),
    };
    let in_channels = size(args::IN, None, errors);
    let out_channels = size(args::OUT, None, errors);
    let kernel = pair(args::K, None, errors);
    let groups = match (separable, in_channels) {
        // `separable`: the depthwise stage has `groups = in`; a written value must say so.
        (Some(true), Some(in_channels)) => {
            let written = size(args::GROUPS, None, errors);
            check_separable_groups(in_channels, written, errors);
            Some(in_channels)
        }
        _ => size(args::GROUPS, Some(1), errors),
    };
    let stride = pair(args::STRIDE, Some(1), errors);
    let pad = match given.get(args::PAD) {
        None => Some(Field::default(Pad::Explicit([0; 4]))),
        Some(None) => None,
        Some(Some(value)) => check_pad(value, errors),
    };
    let dilation = pair(args::DILATION, Some(1), errors);
    let bias = match given.get(args::BIAS) {
        None => Some(true),
        Some(None) => None,
        Some(Some(value)) => check_bool(args::BIAS, value, errors),
    };
    let act = activation(&given, args::ACT, args::CLAMP, errors);
    let dw_act = activation(&given, args::DW_ACT, args::DW_CLAMP, errors);
    if separable == Some(false) {
        for key in [args::DW_ACT, args::DW_CLAMP] {
            if let Some(Some(value)) = given.get(key) {
                check_dw_act_needs_separable(key, value, errors);
            }
        }
    }
    let separable = separable == Some(true);

    // Rules across keys.
    if let (Some(in_channels), Some(groups)) = (in_channels, groups) {
        let out = out_channels.map(|o| o.value);
        check_groups_divide_in(in_channels.value, out, groups, errors);
    }
    if let (Some(out_channels), Some(groups), false) = (out_channels, groups, separable) {
        let in_channels = in_channels.map(|i| i.value);
        check_groups_divide_out(out_channels.value, in_channels, groups, errors);
    }
    if let (Some(pad), Some(stride)) = (pad, stride) {
        check_same_pad_has_stride_one(pad, stride, kernel, dilation, errors);
    }

    let (in_channels, out_channels, kernel, groups, stride, pad, dilation, bias, act, dw_act) = (
        in_channels?,
        out_channels?,
        kernel?,
        groups?,
        stride?,
        pad?,
        dilation?,
        bias?,
        act?,
        dw_act?,
    );
    // The direct stage's weights: a separable layer's depthwise stage is `in -> in`.
    let direct_out = if separable { in_channels } else { out_channels };
    let [pad_top, pad_bottom, pad_left, pad_right] = check_sizes_fit(
        direct_out,
        in_channels.value / groups.value,
        kernel,
        dilation,
        pad,
        errors,
    )?;
    if separable {
        check_pointwise_fits(in_channels.value, out_channels, errors)?;
    }
    let divides = in_channels.value % groups.value == 0
        && (separable || out_channels.value % groups.value == 0);
    if !divides {
        return None; // reported above
    }
    Some(Spec {
        in_channels: in_channels.value,
        out_channels: out_channels.value,
        kernel_h: kernel[0].value,
        kernel_w: kernel[1].value,
        stride_h: stride[0].value,
        stride_w: stride[1].value,
        pad_top,
        pad_bottom,
        pad_left,
        pad_right,
        dilation_h: dilation[0].value,
        dilation_w: dilation[1].value,
        groups: groups.value,
        bias,
        act,
        separable,
        dw_act,
    })
}

/// Reads the activation of one stage from its name key (`act`) and its clamp key (`clamp`):
/// at most one of them, `none` when neither is given. `None`: already reported.
fn activation(
    given: &Given,
    name_key: &'static str,
    clamp_key: &'static str,
    errors: &mut Errors,
) -> Option<Act> {
    let named = given.get(name_key);
    let clamp = given.get(clamp_key);
    if let (Some(_), Some(Some(value))) = (named, clamp) {
        check_one_activation(name_key, clamp_key, value, errors);
        return None;
    }
    match (named, clamp) {
        (Some(None), _) | (_, Some(None)) => None,
        (Some(Some(value)), _) => check_activation_name(name_key, clamp_key, value, errors),
        (_, Some(Some(value))) => check_clamp(clamp_key, value, errors),
        (None, None) => Some(Act::None),
    }
}

/// Rule: every key is one of [`args::KEYS`]. The message lists them and suggests the closest,
/// or the `nn.Conv2d` spelling's equivalent (`padding` -> `pad`).
fn check_known_key(key: &Ident, errors: &mut Errors) -> Option<&'static str> {
    let name = key.to_string();
    if let Some(known) = args::KEYS.iter().find(|k| **k == name) {
        return Some(known);
    }
    let expected = backticked(&args::KEYS, "");
    let message = match suggest(&name) {
        Some(close) => {
            format!("unknown key `{name}`; did you mean `{close}`? expected one of {expected}")
        }
        None => format!("unknown key `{name}`; expected one of {expected}"),
    };
    push(errors, syn::Error::new(key.span(), message));
    None
}

/// Rule: a key is given at most once. The second occurrence is the error; the first one is used.
fn check_unique_key(key: &Ident, seen: &[&Ident], errors: &mut Errors) -> bool {
    if !seen.contains(&key) {
        return true;
    }
    let forms = args::forms(&key.to_string());
    push(
        errors,
        syn::Error::new(
            key.span(),
            format!("duplicate key `{key}`; give it once, as {forms}"),
        ),
    );
    false
}

/// Rule: `in`, `out` and `k` have no default and must be given. Reported once, on the
/// attribute, listing every missing key.
fn check_required_keys(given: &Given, errors: &mut Errors) {
    let missing: Vec<&str> = args::REQUIRED
        .into_iter()
        .filter(|key| given.get(key).is_none())
        .collect();
    let message = match missing[..] {
        [] => return,
        [key] => format!("missing key `{key}`; add {}", args::forms(key)),
        _ => {
            let example: Vec<String> = missing
                .iter()
                .map(|key| format!("{key} = {}", if *key == args::K { 3 } else { 64 }))
                .collect();
            format!(
                "missing keys {}; add them, e.g. `{}`",
                backticked(&missing, "and"),
                example.join(", ")
            )
        }
    };
    push(errors, syn::Error::new(Span::call_site(), message));
}

/// Rule: each key takes the number of values its forms allow: one for `in`, `out`, `groups`;
/// one or a pair for `k`, `stride`, `dilation`; one, a pair or four for `pad`.
fn check_arity<'a>(
    key: &str,
    value: &'a Value,
    allowed: &[usize],
    errors: &mut Errors,
) -> Option<Vec<&'a Value>> {
    let Value::Tuple(items, _) = value else {
        return Some(vec![value]);
    };
    if allowed.contains(&items.len()) && items.len() > 1 {
        return Some(items.iter().collect());
    }
    let message = format!(
        "wrong number of values for `{key}`: found {} in `{}`; write {}",
        items.len(),
        value.source(),
        args::forms(key)
    );
    push(errors, value.error(message));
    None
}

/// Rule: sizes are written as non-negative integer literals that fit in `usize`: no floats,
/// strings, negative numbers or named constants (a macro cannot read a constant's value).
fn check_integer(key: &str, value: &Value, errors: &mut Errors) -> Option<Field<usize>> {
    let forms = args::forms(key);
    let message = match value {
        Value::Int(lit) => match lit.base10_parse::<usize>() {
            Ok(n) => {
                return Some(Field {
                    value: n,
                    span: lit.span(),
                })
            }
            Err(_) => format!(
                "`{key}` is too large: {} does not fit in `usize`",
                lit.base10_digits()
            ),
        },
        Value::Str(lit) if lit.value().trim().parse::<usize>().is_ok() => format!(
            "`{key}` must be an integer, not a string; write `{key} = {}`",
            lit.value().trim()
        ),
        Value::Other(syn::Expr::Unary(e)) if matches!(e.op, syn::UnOp::Neg(_)) => format!(
            "`{key}` must not be negative, found `{}`; write {forms}",
            value.source()
        ),
        Value::Other(syn::Expr::Path(_)) => format!(
            "`{key}` must be an integer literal, found `{}`; the macro cannot read constants, \
             write the number itself",
            value.source()
        ),
        _ => format!(
            "`{key}` must be an integer, found `{}`; write {forms}",
            value.source()
        ),
    };
    push(errors, value.error(message));
    None
}

/// Rule: channel counts, kernel sizes, groups, strides and dilations are at least 1.
/// (Padding may be 0.)
fn check_nonzero(key: &str, n: Field<usize>, errors: &mut Errors) -> Option<Field<usize>> {
    if n.value != 0 {
        return Some(n);
    }
    let message = format!(
        "`{key}` must be at least 1, found 0; write {}",
        args::forms(key)
    );
    push(errors, syn::Error::new(n.span, message));
    None
}

/// Reads `pad`: one integer, `(ph, pw)`, `(top, bottom, left, right)`, `"same"` or `"valid"`.
fn check_pad(value: &Value, errors: &mut Errors) -> Option<Field<Pad>> {
    let span = value.span();
    if let Value::Str(lit) = value {
        let pad = check_pad_string(lit, errors)?;
        return Some(Field { value: pad, span });
    }
    let items = check_arity(args::PAD, value, &[1, 2, 4], errors)?;
    // Read every element before giving up, so each bad one is reported.
    let read: Vec<Option<usize>> = items
        .into_iter()
        .map(|v| check_integer(args::PAD, v, errors).map(|f| f.value))
        .collect();
    let read: Vec<usize> = read.into_iter().collect::<Option<_>>()?;
    let sides = match read[..] {
        [p] => [p; 4],
        [ph, pw] => [ph, ph, pw, pw],
        [top, bottom, left, right] => [top, bottom, left, right],
        _ => return None,
    };
    Some(Field {
        value: Pad::Explicit(sides),
        span,
    })
}

/// Rule: a padding string is `"same"` or `"valid"` (PyTorch's two).
fn check_pad_string(lit: &syn::LitStr, errors: &mut Errors) -> Option<Pad> {
    match lit.value().as_str() {
        "same" => Some(Pad::Same),
        "valid" => Some(Pad::Explicit([0; 4])),
        other => {
            let message = format!(
                "unknown padding `{other:?}`; write `pad = \"same\"`, `pad = \"valid\"` or \
                 explicit padding such as `pad = 1`"
            );
            push(errors, syn::Error::new(lit.span(), message));
            None
        }
    }
}

/// Rule: `bias` and `separable` are `true` or `false` (`separable` may be written bare).
fn check_bool(key: &str, value: &Value, errors: &mut Errors) -> Option<bool> {
    if let Value::Bool(b) = value {
        return Some(b.value);
    }
    let message = format!(
        "`{key}` must be `true` or `false`, found `{}`",
        value.source()
    );
    push(errors, value.error(message));
    None
}

/// Rule: `act` / `dw_act` name one of [`args::ACTIVATIONS`] (case-insensitive); a clamp is
/// written with its own key.
fn check_activation_name(
    key: &str,
    clamp_key: &str,
    value: &Value,
    errors: &mut Errors,
) -> Option<Act> {
    let Value::Str(lit) = value else {
        let message = format!(
            "`{key}` must be a string, found `{}`; write {}",
            value.source(),
            args::forms(key)
        );
        push(errors, value.error(message));
        return None;
    };
    let name = lit.value().trim().to_ascii_lowercase();
    match name.as_str() {
        "none" | "identity" | "linear" => return Some(Act::None),
        "relu" => return Some(Act::Relu),
        "relu6" => return Some(Act::Relu6),
        _ => {}
    }
    let expected = backticked(&args::ACTIVATIONS, "or");
    let squashed = name.replace(['_', '-', ' '], "");
    // Activations PyTorch has that are not clamps: not typos of ours, so no "did you mean".
    let unfused = [
        "gelu",
        "silu",
        "swish",
        "hardswish",
        "sigmoid",
        "hardsigmoid",
        "tanh",
        "elu",
        "selu",
        "leakyrelu",
        "prelu",
        "mish",
        "softplus",
    ];
    let message = if ["clamp", "hardtanh", "clip"].contains(&squashed.as_str()) {
        format!(
            "`{key} = {:?}` needs bounds; write `{clamp_key} = (min, max)` instead",
            lit.value()
        )
    } else if unfused.contains(&squashed.as_str()) {
        format!(
            "`{}` is not a fused activation; `{key}` takes {expected} (or use \
             `{clamp_key} = (min, max)`); apply `{}` to the layer's output instead",
            lit.value(),
            lit.value()
        )
    } else {
        let close = args::ACTIVATIONS
            .iter()
            .map(|a| {
                (
                    edit_distance(a, &squashed),
                    a.len().abs_diff(squashed.len()),
                    *a,
                )
            })
            .filter(|(d, _, _)| *d <= 1)
            .min();
        match close {
            Some((_, _, close)) => format!(
                "unknown activation {:?} for `{key}`; did you mean `{close}`? expected {expected}, \
                 or `{clamp_key} = (min, max)`",
                lit.value()
            ),
            None => format!(
                "unknown activation {:?} for `{key}`; expected {expected}, or \
                 `{clamp_key} = (min, max)`",
                lit.value()
            ),
        }
    };
    push(errors, value.error(message));
    None
}

/// Rule: `clamp` / `dw_clamp` is a pair of finite numbers `(min, max)` with `min <= max`.
fn check_clamp(key: &str, value: &Value, errors: &mut Errors) -> Option<Act> {
    let bad = |errors: &mut Errors, what: String| {
        let message = format!("{what}; write {}", args::forms(key));
        push(errors, value.error(message));
        None
    };
    let Value::Tuple(items, _) = value else {
        return bad(
            errors,
            format!(
                "`{key}` must be a pair `(min, max)`, found `{}`",
                value.source()
            ),
        );
    };
    let [lo, hi] = &items[..] else {
        return bad(
            errors,
            format!(
                "`{key}` takes two values, found {} in `{}`",
                items.len(),
                value.source()
            ),
        );
    };
    let (lo, hi) = (number(lo), number(hi));
    let (Some(lo), Some(hi)) = (lo, hi) else {
        return bad(
            errors,
            format!(
                "`{key}` must hold two number literals, found `{}`",
                value.source()
            ),
        );
    };
    let (lo32, hi32) = (lo as f32, hi as f32);
    if !lo32.is_finite() || !hi32.is_finite() {
        return bad(
            errors,
            format!(
                "`{key}` bounds must be finite `f32` values, found `{}`",
                value.source()
            ),
        );
    }
    if lo > hi {
        return bad(
            errors,
            format!("`{key}` needs min <= max, found `{}`", value.source()),
        );
    }
    Some(Act::Clamp(lo32, hi32))
}

/// An integer or float literal, possibly negated: `3`, `-1`, `0.5`, `-6.0`.
fn number(value: &Value) -> Option<f64> {
    let lit = |lit: &syn::Lit| match lit {
        syn::Lit::Int(i) => i.base10_parse::<f64>().ok(),
        syn::Lit::Float(f) => f.base10_parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Value::Int(i) => i.base10_parse::<f64>().ok(),
        Value::Other(syn::Expr::Lit(e)) => lit(&e.lit),
        Value::Other(syn::Expr::Unary(e)) if matches!(e.op, syn::UnOp::Neg(_)) => match &*e.expr {
            syn::Expr::Lit(e) => lit(&e.lit).map(|v| -v),
            _ => None,
        },
        _ => None,
    }
}

/// Rule: a stage has one activation: `act` or `clamp`, not both (likewise `dw_act`/`dw_clamp`).
fn check_one_activation(name_key: &str, clamp_key: &str, clamp: &Value, errors: &mut Errors) {
    let message = format!(
        "give `{name_key}` or `{clamp_key}`, not both: each sets the activation of the same stage"
    );
    push(errors, clamp.error(message));
}

/// Rule: `dw_act` / `dw_clamp` only exist on `separable` layers (they act between its stages).
fn check_dw_act_needs_separable(key: &str, value: &Value, errors: &mut Errors) {
    let plain = if key == args::DW_ACT {
        args::ACT
    } else {
        args::CLAMP
    };
    let message = format!(
        "`{key}` applies between the two stages of a `separable` layer; add `separable`, or \
         use `{plain}` for the activation of this layer"
    );
    push(errors, value.error(message));
}

/// Rule: with `separable`, `groups` is implied: the depthwise stage has `groups = in`. Writing
/// it is allowed only with that value.
fn check_separable_groups(
    in_channels: Field<usize>,
    groups: Option<Field<usize>>,
    errors: &mut Errors,
) {
    let Some(groups) = groups else { return };
    if groups.value == in_channels.value {
        return;
    }
    let message = format!(
        "a `separable` layer's depthwise stage has `groups = in` = {}, found `groups = {}`; \
         remove `groups` (it is implied)",
        in_channels.value, groups.value
    );
    push(errors, syn::Error::new(groups.span, message));
}

/// Rule: a separable layer's pointwise weights `out * in` fit in `usize`.
fn check_pointwise_fits(
    in_channels: usize,
    out_channels: Field<usize>,
    errors: &mut Errors,
) -> Option<()> {
    if out_channels.value.checked_mul(in_channels).is_some() {
        return Some(());
    }
    let message = format!(
        "layer too large: the pointwise weight length `out * in` = {} * {in_channels} does not \
         fit in `usize`; use smaller sizes",
        out_channels.value
    );
    push(errors, syn::Error::new(out_channels.span, message));
    None
}

/// Rule: `groups` divides `in` (each group sees `in / groups` input channels).
fn check_groups_divide_in(
    in_channels: usize,
    out_channels: Option<usize>,
    groups: Field<usize>,
    errors: &mut Errors,
) {
    if in_channels % groups.value == 0 {
        return;
    }
    let message = format!(
        "`groups` must divide `in`: {in_channels} is not a multiple of {}; {}",
        groups.value,
        suggest_groups(in_channels, out_channels, groups.value)
    );
    push(errors, syn::Error::new(groups.span, message));
}

/// Rule: `groups` divides `out` (each group produces `out / groups` output channels).
fn check_groups_divide_out(
    out_channels: usize,
    in_channels: Option<usize>,
    groups: Field<usize>,
    errors: &mut Errors,
) {
    if out_channels % groups.value == 0 {
        return;
    }
    let message = format!(
        "`groups` must divide `out`: {out_channels} is not a multiple of {}; {}",
        groups.value,
        suggest_groups(out_channels, in_channels, groups.value)
    );
    push(errors, syn::Error::new(groups.span, message));
}

/// Rule: `pad = "same"` needs stride 1 on both axes (as in PyTorch: with a larger stride no
/// padding keeps the size). The message computes the explicit padding to write instead.
fn check_same_pad_has_stride_one(
    pad: Field<Pad>,
    stride: [Field<usize>; 2],
    kernel: Option<[Field<usize>; 2]>,
    dilation: Option<[Field<usize>; 2]>,
    errors: &mut Errors,
) {
    if !matches!(pad.value, Pad::Same) || (stride[0].value == 1 && stride[1].value == 1) {
        return;
    }
    let found = if stride[0].value == stride[1].value {
        stride[0].value.to_string()
    } else {
        format!("({}, {})", stride[0].value, stride[1].value)
    };
    let instead = match (kernel, dilation) {
        (Some(k), Some(d)) => {
            let half = |axis: usize| {
                d[axis]
                    .value
                    .checked_mul(k[axis].value - 1)
                    .map(|total| total / 2)
            };
            match (half(0), half(1)) {
                (Some(ph), Some(pw)) if ph == pw => format!("e.g. `pad = {ph}`"),
                (Some(ph), Some(pw)) => format!("e.g. `pad = ({ph}, {pw})`"),
                _ => "e.g. `pad = 1`".to_owned(),
            }
        }
        _ => "e.g. `pad = 1`".to_owned(),
    };
    let message = format!(
        "`pad = \"same\"` needs `stride = 1`, found `stride = {found}`; write the padding \
         explicitly, {instead}"
    );
    push(errors, syn::Error::new(pad.span, message));
}

/// Rule: every size the generated code computes at compile time fits in `usize`:
/// - the weight length `out * (in / groups) * kh * kw` (it bounds `in * kh * kw` and
///   `out * kh * kw` too, since `out >= groups`),
/// - the dilated kernel extent `dilation * (k - 1) + 1` per axis,
/// - the padding per axis and in total.
///
/// Returns the resolved padding `[top, bottom, left, right]` ("same" split as PyTorch does:
/// the smaller half before, the odd extra after).
fn check_sizes_fit(
    out_channels: Field<usize>,
    in_per_group: usize,
    kernel: [Field<usize>; 2],
    dilation: [Field<usize>; 2],
    pad: Field<Pad>,
    errors: &mut Errors,
) -> Option<[usize; 4]> {
    let mut fits = true;
    let (kh, kw) = (kernel[0].value, kernel[1].value);
    let weight = out_channels
        .value
        .checked_mul(in_per_group)
        .and_then(|n| n.checked_mul(kh))
        .and_then(|n| n.checked_mul(kw));
    if weight.is_none() {
        let message = format!(
            "layer too large: the weight length `out * (in / groups) * kh * kw` = \
             {} * {in_per_group} * {kh} * {kw} does not fit in `usize`; use smaller sizes",
            out_channels.value
        );
        push(errors, syn::Error::new(out_channels.span, message));
        fits = false;
    }
    // `dilation * (k - 1)`, the padding "same" needs; `+ 1` is the extent.
    let mut dilated = [0; 2];
    for axis in 0..2 {
        let (k, d) = (kernel[axis].value, dilation[axis].value);
        if axis == 1 && !fits && (k, d) == (kernel[0].value, dilation[0].value) {
            break; // `k = 3, dilation = <huge>`: one error, not one per axis
        }
        match d.checked_mul(k - 1).filter(|n| n.checked_add(1).is_some()) {
            Some(n) => dilated[axis] = n,
            None => {
                let message = format!(
                    "dilated kernel too large: `dilation * (k - 1) + 1` = {d} * ({k} - 1) + 1 \
                     does not fit in `usize`; use a smaller `dilation` or `k`"
                );
                push(errors, syn::Error::new(dilation[axis].span, message));
                fits = false;
            }
        }
    }
    if !fits {
        return None;
    }
    let sides = match pad.value {
        Pad::Explicit(sides) => sides,
        Pad::Same => {
            let [h, w] = dilated;
            [h / 2, h - h / 2, w / 2, w - w / 2]
        }
    };
    let [top, bottom, left, right] = sides;
    let sums = [
        ("pad_top + pad_bottom", top.checked_add(bottom)),
        ("pad_left + pad_right", left.checked_add(right)),
        (
            "pad_top + pad_bottom + pad_left + pad_right",
            top.checked_add(bottom)
                .and_then(|n| n.checked_add(left))
                .and_then(|n| n.checked_add(right)),
        ),
    ];
    if let Some((what, _)) = sums.iter().find(|(_, sum)| sum.is_none()) {
        let message =
            format!("padding too large: `{what}` does not fit in `usize`; use a smaller `pad`");
        push(errors, syn::Error::new(pad.span, message));
        return None;
    }
    Some(sides)
}

/// Parses `item` and applies the item rules. Returns the struct whenever there is one, valid
/// or not, for the fallback stub.
fn check_item(item: TokenStream, errors: &mut Errors) -> Option<ItemStruct> {
    let item = match syn::parse2::<Item>(item) {
        Ok(item) => item,
        Err(e) => {
            push(errors, e);
            return None;
        }
    };
    let strukt = check_item_is_struct(item, errors)?;
    check_unit_struct(&strukt, errors);
    check_no_generics(&strukt, errors);
    Some(strukt)
}

/// Rule: the attribute goes on a struct (the layer type). Anything else is reported on its
/// keyword and name, e.g. `enum Layer`.
fn check_item_is_struct(item: Item, errors: &mut Errors) -> Option<ItemStruct> {
    let (what, tokens) = match item {
        Item::Struct(strukt) => return Some(strukt),
        Item::Enum(i) => ("an enum", keyword_and_name(i.enum_token, &i.ident)),
        Item::Fn(i) => ("a function", keyword_and_name(i.sig.fn_token, &i.sig.ident)),
        Item::Union(i) => ("a union", keyword_and_name(i.union_token, &i.ident)),
        Item::Trait(i) => ("a trait", keyword_and_name(i.trait_token, &i.ident)),
        Item::Type(i) => ("a type alias", keyword_and_name(i.type_token, &i.ident)),
        Item::Const(i) => ("a constant", keyword_and_name(i.const_token, &i.ident)),
        Item::Static(i) => ("a static", keyword_and_name(i.static_token, &i.ident)),
        Item::Mod(i) => ("a module", keyword_and_name(i.mod_token, &i.ident)),
        Item::Impl(i) => ("an impl block", keyword_and_name(i.impl_token, &i.self_ty)),
        other => ("this item", quote!(#other)),
    };
    let message =
        format!("`#[conv_kernel]` goes on a unit struct, not on {what}; write `pub struct Layer;`");
    push(errors, syn::Error::new_spanned(tokens, message));
    None
}

/// `enum Layer`: the tokens an item error spans.
fn keyword_and_name(keyword: impl ToTokens, name: &impl ToTokens) -> TokenStream {
    quote!(#keyword #name)
}

/// Rule: the struct is a unit struct. The macro generates its fields (the packed weights), so
/// user fields are reported on their braces or parentheses.
fn check_unit_struct(strukt: &ItemStruct, errors: &mut Errors) {
    if matches!(strukt.fields, syn::Fields::Unit) {
        return;
    }
    let name = &strukt.ident;
    let message = format!(
        "`#[conv_kernel]` needs a unit struct; remove the fields and write `pub struct {name};`"
    );
    push(errors, syn::Error::new_spanned(&strukt.fields, message));
}

/// Rule: the struct has no generics or where clause: the attribute fixes the whole layer.
fn check_no_generics(strukt: &ItemStruct, errors: &mut Errors) {
    let generics = &strukt.generics;
    let name = &strukt.ident;
    let message = format!(
        "`#[conv_kernel]` needs a struct without generics, the attribute fixes the layer; \
         write `pub struct {name};`"
    );
    if !generics.params.is_empty() {
        push(errors, syn::Error::new_spanned(generics, message));
    } else if let Some(clause) = &generics.where_clause {
        push(errors, syn::Error::new_spanned(clause, message));
    }
}

/// `` `a`, `b` and `c` `` for messages; `conjunction` is `"and"`, `"or"`, or `""` for commas
/// only.
fn backticked(names: &[&str], conjunction: &str) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() && !conjunction.is_empty() => {
            format!("{} {conjunction} {last}", rest.join(", "))
        }
        _ => quoted.join(", "),
    }
}

/// The key `name` was probably meant to be: a PyTorch alias, or a key within edit distance 2
/// (and closer than the name is long, so `x` does not become `k`).
fn suggest(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    if let Some((_, key)) = args::ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return Some(key);
    }
    args::KEYS
        .into_iter()
        .map(|key| (edit_distance(&lower, key), key))
        .filter(|(d, key)| *d <= 2 && *d < key.len().max(lower.len()) / 2 + 1 && *d > 0)
        .min_by_key(|(d, _)| *d)
        .map(|(_, key)| key)
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// "the nearest values that divide both ..." for a `groups` that does not divide `n`: the
/// common divisors of `n` and `other` just below and above `groups`.
fn suggest_groups(n: usize, other: Option<usize>, groups: usize) -> String {
    let (common, target) = match other {
        Some(m) => (gcd(n, m), "dividing both `in` and `out`"),
        None => (n, "dividing it"),
    };
    let Some(divisors) = divisors(common) else {
        return format!("use a divisor of {common}");
    };
    let below = divisors.iter().rev().find(|d| **d < groups);
    let above = divisors.iter().find(|d| **d > groups);
    match (below, above) {
        (Some(below), Some(above)) => {
            format!("the nearest values {target} are {below} and {above}")
        }
        (Some(below), None) => format!("the largest value {target} is {below}"),
        // `groups > 1` here, and 1 divides everything.
        _ => format!("use a divisor of {common}"),
    }
}

/// The divisors of `n` in increasing order, or `None` when `n` is too large to factor quickly.
fn divisors(n: usize) -> Option<Vec<usize>> {
    if n > 1 << 40 {
        return None;
    }
    let mut small = Vec::new();
    let mut large = Vec::new();
    let mut d = 1;
    while d * d <= n {
        if n % d == 0 {
            small.push(d);
            if d * d != n {
                large.push(n / d);
            }
        }
        d += 1;
    }
    small.extend(large.into_iter().rev());
    Some(small)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validates `#[conv_kernel(attr)] pub struct X;`.
    fn check(attr: TokenStream) -> Result<Spec, Vec<String>> {
        check_item_tokens(
            attr,
            quote!(
                pub struct X;
            ),
        )
    }

    fn check_item_tokens(attr: TokenStream, item: TokenStream) -> Result<Spec, Vec<String>> {
        match layer(attr, item) {
            Ok((spec, _)) => Ok(spec),
            Err((e, _)) => Err(e.into_iter().map(|e| e.to_string()).collect()),
        }
    }

    /// The single error of `attr`.
    fn error(attr: TokenStream) -> String {
        let errors = check(attr).expect_err("should be rejected");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.into_iter().next().unwrap()
    }

    #[test]
    fn depthwise_with_defaults() {
        let s =
            check(quote!(in = 144, out = 144, k = 3, groups = 144, stride = 1, pad = 1)).unwrap();
        assert_eq!((s.in_channels, s.out_channels, s.groups), (144, 144, 144));
        assert_eq!(
            (s.kernel_h, s.kernel_w, s.stride_h, s.stride_w),
            (3, 3, 1, 1)
        );
        assert_eq!([s.pad_top, s.pad_bottom, s.pad_left, s.pad_right], [1; 4]);
        assert_eq!((s.dilation_h, s.dilation_w, s.bias), (1, 1, true));

        let s = check(quote!(in = 8, out = 16, k = 1)).unwrap();
        assert_eq!(
            (s.groups, s.stride_h, s.pad_top, s.dilation_w, s.bias),
            (1, 1, 0, 1, true)
        );
    }

    #[test]
    fn every_form() {
        let s = check(quote!(
            in = 8, out = 4, k = (3, 5), groups = 2, stride = (2, 1), pad = (1, 2, 3, 4),
            dilation = (1, 2), bias = false,
        ))
        .unwrap();
        assert_eq!(
            (s.kernel_h, s.kernel_w, s.stride_h, s.stride_w),
            (3, 5, 2, 1)
        );
        assert_eq!(
            [s.pad_top, s.pad_bottom, s.pad_left, s.pad_right],
            [1, 2, 3, 4]
        );
        assert_eq!((s.dilation_h, s.dilation_w, s.bias), (1, 2, false));

        let s = check(quote!(in = 8, out = 8, k = 3, pad = (1, 2))).unwrap();
        assert_eq!(
            [s.pad_top, s.pad_bottom, s.pad_left, s.pad_right],
            [1, 1, 2, 2]
        );
        let s = check(quote!(in = 8, out = 8, k = 3, pad = "valid", r#in = 8)).unwrap_err();
        assert_eq!(s.len(), 1, "{s:?}");
        assert!(s[0].starts_with("duplicate key `in`"), "{s:?}");
    }

    #[test]
    fn same_padding_follows_pytorch() {
        // Total `dilation * (k - 1)`; the odd extra goes after (bottom / right).
        let s =
            check(quote!(in = 1, out = 1, k = (4, 3), dilation = (1, 3), pad = "same")).unwrap();
        assert_eq!(
            [s.pad_top, s.pad_bottom, s.pad_left, s.pad_right],
            [1, 2, 3, 3]
        );
        let s = check(quote!(in = 1, out = 1, k = 2, pad = "same")).unwrap();
        assert_eq!(
            [s.pad_top, s.pad_bottom, s.pad_left, s.pad_right],
            [0, 1, 0, 1]
        );
        let e = error(quote!(in = 1, out = 1, k = 5, stride = 2, pad = "same"));
        assert_eq!(
            e,
            "`pad = \"same\"` needs `stride = 1`, found `stride = 2`; write the padding \
             explicitly, e.g. `pad = 2`"
        );
    }

    #[test]
    fn key_errors() {
        assert_eq!(
            error(quote!(in = 1, out = 1, k = 1, strides = 1)),
            "unknown key `strides`; did you mean `stride`? expected one of `in`, `out`, `k`, \
             `groups`, `stride`, `pad`, `dilation`, `bias`, `act`, `clamp`, `separable`, \
             `dw_act`, `dw_clamp`"
        );
        assert!(error(quote!(in = 1, out = 1, k = 1, padding = 1)).contains("did you mean `pad`?"));
        assert!(!error(quote!(in = 1, out = 1, k = 1, zzz = 1)).contains("did you mean"));
        assert!(error(quote!(in = 1, out = 1, k = 1, k = 2)).starts_with("duplicate key `k`"));
        assert_eq!(
            error(quote!(in = 1, k = 1)),
            "missing key `out`; add a channel count such as `out = 64`"
        );
        assert_eq!(
            error(quote!()),
            "missing keys `in`, `out` and `k`; add them, e.g. `in = 64, out = 64, k = 3`"
        );
    }

    #[test]
    fn value_errors() {
        assert!(
            error(quote!(in = 1, out = 1, k = 0)).starts_with("`k` must be at least 1, found 0")
        );
        assert!(error(quote!(in = 1, out = 1, k = (3, 0))).starts_with("`k` must be at least 1"));
        assert!(error(quote!(in = 1, out = 1, k = 3.5))
            .starts_with("`k` must be an integer, found `3.5`"));
        assert_eq!(
            error(quote!(in = 1, out = 1, k = "3")),
            "`k` must be an integer, not a string; write `k = 3`"
        );
        assert!(error(quote!(in = 1, out = 1, k = -3))
            .starts_with("`k` must not be negative, found `-3`"));
        assert!(error(quote!(in = N, out = 1, k = 3)).contains("cannot read constants"));
        assert!(error(quote!(in = 1, out = 1, k = 3, pad = (1, 1, 1)))
            .starts_with("wrong number of values for `pad`: found 3 in `(1, 1, 1)`"));
        assert!(error(quote!(in = 1, out = 1, k = (3, 3, 3)))
            .starts_with("wrong number of values for `k`"));
        assert!(error(quote!(in = (1, 1), out = 1, k = 3))
            .starts_with("wrong number of values for `in`"));
        assert!(error(quote!(in = 1, out = 1, k = 3, pad = "full"))
            .starts_with("unknown padding `\"full\"`"));
        assert_eq!(
            error(quote!(in = 1, out = 1, k = 3, bias = 1)),
            "`bias` must be `true` or `false`, found `1`"
        );
        // Padding may be zero; sizes may not be negative.
        assert!(check(quote!(in = 1, out = 1, k = 3, pad = 0)).is_ok());
        assert!(error(quote!(in = 1, out = 1, k = 3, pad = (0, -1)))
            .starts_with("`pad` must not be negative"));
    }

    #[test]
    fn divisibility() {
        assert_eq!(
            error(quote!(in = 32, out = 12, k = 3, groups = 3)),
            "`groups` must divide `in`: 32 is not a multiple of 3; the nearest values dividing \
             both `in` and `out` are 2 and 4"
        );
        assert_eq!(
            error(quote!(in = 8, out = 6, k = 3, groups = 4)),
            "`groups` must divide `out`: 6 is not a multiple of 4; the largest value dividing \
             both `in` and `out` is 2"
        );
        // Both rules fail: both reported, each once.
        let errors = check(quote!(in = 5, out = 7, k = 1, groups = 2)).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
    }

    #[test]
    fn overflow() {
        let e = error(quote!(in = 4294967296, out = 4294967296, k = 3));
        assert!(e.starts_with("layer too large"), "{e}");
        let e = error(quote!(in = 1, out = 1, k = 3, dilation = 18446744073709551615));
        assert!(e.starts_with("dilated kernel too large"), "{e}");
        let e = error(
            quote!(in = 1, out = 1, k = 3, pad = (9223372036854775808, 0, 0, 9223372036854775808)),
        );
        assert!(
            e.contains("pad_top + pad_bottom + pad_left + pad_right"),
            "{e}"
        );
        let e = error(quote!(in = 1, out = 1, k = 3, pad = 18446744073709551616));
        assert!(e.starts_with("`pad` is too large"), "{e}");
    }

    #[test]
    fn every_error_at_once() {
        let errors = check(quote!(in = 32, out = 6, k = 3.5, groups = 3, strides = 2)).unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn syntax_errors_keep_the_rest() {
        let errors = check(quote!(in 3, out = 1, k = 0)).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert_eq!(errors[0], "expected `=` after `in`, e.g. `in = 3`");
        let errors = check(quote!(in = 3 out = 1, k = 1)).unwrap_err();
        // `out = 1` is swallowed by the bad piece; no "missing key `out`" guess.
        assert_eq!(
            errors,
            ["expected `,` after the value of `in`, found `out`"]
        );
    }

    #[test]
    fn item_errors() {
        let attr = quote!(in = 1, out = 1, k = 1);
        let e = check_item_tokens(
            attr.clone(),
            quote!(
                enum E {
                    A,
                }
            ),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ["`#[conv_kernel]` goes on a unit struct, not on an enum; write `pub struct Layer;`"]
        );
        let e = check_item_tokens(
            attr.clone(),
            quote!(
                fn f() {}
            ),
        )
        .unwrap_err();
        assert!(e[0].contains("not on a function"));
        let e = check_item_tokens(
            attr.clone(),
            quote!(
                pub struct X {
                    w: u8,
                }
            ),
        )
        .unwrap_err();
        assert!(e[0].starts_with("`#[conv_kernel]` needs a unit struct"));
        let e = check_item_tokens(
            attr.clone(),
            quote!(
                pub struct X<const N: usize>;
            ),
        )
        .unwrap_err();
        assert!(e[0].contains("without generics"));
        // The struct is handed back for the stub.
        assert!(matches!(
            layer(
                attr,
                quote!(
                    pub struct X(u8);
                )
            ),
            Err((_, Some(_)))
        ));
        // Attribute and item errors together.
        let e = check_item_tokens(
            quote!(in = 0, out = 1, k = 1),
            quote!(
                enum E {}
            ),
        )
        .unwrap_err();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn stub_parses() {
        let item: ItemStruct = syn::parse2(quote!(
            pub struct X<const N: usize>;
        ))
        .unwrap();
        for separable in [false, true] {
            let file: syn::File = syn::parse2(crate::fallback::stub(&item, separable)).unwrap();
            assert_eq!(file.items.len(), 2);
        }
    }
}
