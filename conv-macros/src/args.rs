//! Attribute syntax -> raw arguments: `key = value` pairs exactly as written, each with its span.
//!
//! Nothing here knows what a valid layer is; `validate.rs` decides that. This stage only splits
//! the attribute on top-level commas and reads each piece as `key = value`, so one malformed
//! piece does not hide the errors of the others.

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, LitBool, LitInt, LitStr, Token};

pub const IN: &str = "in";
pub const OUT: &str = "out";
pub const K: &str = "k";
pub const GROUPS: &str = "groups";
pub const STRIDE: &str = "stride";
pub const PAD: &str = "pad";
pub const DILATION: &str = "dilation";
pub const BIAS: &str = "bias";
pub const ACT: &str = "act";
pub const CLAMP: &str = "clamp";
pub const SEPARABLE: &str = "separable";
pub const DW_ACT: &str = "dw_act";
pub const DW_CLAMP: &str = "dw_clamp";

/// Every key, in the order the docs and messages list them.
pub const KEYS: [&str; 13] = [
    IN, OUT, K, GROUPS, STRIDE, PAD, DILATION, BIAS, ACT, CLAMP, SEPARABLE, DW_ACT, DW_CLAMP,
];

/// Keys that may be written bare, meaning `= true`: `separable`.
pub const FLAGS: [&str; 1] = [SEPARABLE];

/// The activation names `act` and `dw_act` accept.
pub const ACTIVATIONS: [&str; 3] = ["none", "relu", "relu6"];

/// Keys without a default.
pub const REQUIRED: [&str; 3] = [IN, OUT, K];

/// PyTorch `nn.Conv2d` argument names and other likely spellings, mapped to our key.
pub const ALIASES: [(&str, &str); 11] = [
    ("in_channels", IN),
    ("out_channels", OUT),
    ("kernel_size", K),
    ("kernel", K),
    ("padding", PAD),
    ("strides", STRIDE),
    ("dilations", DILATION),
    ("group", GROUPS),
    ("activation", ACT),
    ("depthwise_separable", SEPARABLE),
    ("dw_activation", DW_ACT),
];

/// The accepted forms of a key, as shown in error messages ("write ... instead").
pub fn forms(key: &str) -> &'static str {
    match key {
        IN => "a channel count such as `in = 64`",
        OUT => "a channel count such as `out = 64`",
        K => "`k = 3` or `k = (kh, kw)`",
        GROUPS => "`groups = 1` or another divisor of `in` and `out`",
        STRIDE => "`stride = 1` or `stride = (sh, sw)`",
        PAD => {
            "`pad = 1`, `pad = (ph, pw)`, `pad = (top, bottom, left, right)`, \
             `pad = \"same\"` or `pad = \"valid\"`"
        }
        DILATION => "`dilation = 1` or `dilation = (dh, dw)`",
        BIAS => "`bias = true` or `bias = false`",
        ACT => "`act = \"relu\"`, `act = \"relu6\"` or `act = \"none\"`",
        CLAMP => "`clamp = (min, max)`, e.g. `clamp = (-1.0, 1.0)`",
        SEPARABLE => "`separable` or `separable = true`",
        DW_ACT => "`dw_act = \"relu\"`, `dw_act = \"relu6\"` or `dw_act = \"none\"`",
        DW_CLAMP => "`dw_clamp = (min, max)`, e.g. `dw_clamp = (0.0, 4.0)`",
        _ => "",
    }
}

/// The parsed attribute.
pub struct RawArgs {
    /// Entries in source order, duplicates and unknown keys included.
    pub entries: Vec<Entry>,
    /// Some piece was malformed and may hide a key (`in = 3 out = 4` reads as one piece), so
    /// "missing key" errors would be guesses.
    pub malformed: bool,
    /// Syntax errors, one per malformed piece.
    pub errors: Option<syn::Error>,
}

/// One `key = value` piece.
pub struct Entry {
    /// The key as written (`r#in` is unraw-ed to `in`); its span points at the key.
    pub key: Ident,
    /// `None` when the value was malformed; that error is already in [`RawArgs::errors`].
    pub value: Option<Value>,
}

/// A value as written.
pub enum Value {
    /// An integer literal: `3`.
    Int(LitInt),
    /// A string literal: `"same"`.
    Str(LitStr),
    /// `true` or `false`.
    Bool(LitBool),
    /// `(a, b, ...)`; the span covers the parentheses.
    Tuple(Vec<Value>, Span),
    /// Anything else (a float, a negative number, a path ...), kept for the error message.
    Other(Expr),
}

impl Value {
    /// An error pointing at the whole value.
    pub fn error(&self, message: impl std::fmt::Display) -> syn::Error {
        match self {
            Value::Int(lit) => syn::Error::new(lit.span(), message),
            Value::Str(lit) => syn::Error::new(lit.span(), message),
            Value::Bool(lit) => syn::Error::new(lit.span, message),
            Value::Tuple(_, span) => syn::Error::new(*span, message),
            Value::Other(expr) => syn::Error::new_spanned(expr, message),
        }
    }

    /// Where the value starts (the whole of it for a literal or a tuple).
    pub fn span(&self) -> Span {
        match self {
            Value::Int(lit) => lit.span(),
            Value::Str(lit) => lit.span(),
            Value::Bool(lit) => lit.span,
            Value::Tuple(_, span) => *span,
            Value::Other(expr) => syn::spanned::Spanned::span(expr),
        }
    }

    /// The value as the user wrote it, for messages: `3.5`, `"3"`, `(1, 2, 3)`.
    pub fn source(&self) -> String {
        match self {
            Value::Int(lit) => lit.to_string(),
            Value::Str(lit) => format!("{:?}", lit.value()),
            Value::Bool(lit) => lit.value.to_string(),
            Value::Tuple(items, _) => {
                let items: Vec<String> = items.iter().map(Value::source).collect();
                let comma = if items.len() == 1 { "," } else { "" };
                format!("({}{comma})", items.join(", "))
            }
            Value::Other(expr) => quote::ToTokens::to_token_stream(expr)
                .to_string()
                .replace("- ", "-"),
        }
    }

    fn from_expr(expr: Expr) -> Value {
        match expr {
            Expr::Lit(e) => match e.lit {
                Lit::Int(lit) => Value::Int(lit),
                Lit::Str(lit) => Value::Str(lit),
                Lit::Bool(lit) => Value::Bool(lit),
                lit => Value::Other(Expr::Lit(syn::ExprLit {
                    attrs: e.attrs,
                    lit,
                })),
            },
            Expr::Tuple(t) => Value::Tuple(
                t.elems.into_iter().map(Value::from_expr).collect(),
                t.paren_token.span.join(),
            ),
            // `(3)` is 3, as in Python; invisible groups come from `macro_rules!` fragments.
            Expr::Paren(e) => Value::from_expr(*e.expr),
            Expr::Group(e) => Value::from_expr(*e.expr),
            other => Value::Other(other),
        }
    }
}

/// Splits `attr` on top-level commas and parses each piece as `key = value`.
pub fn parse(attr: TokenStream) -> RawArgs {
    let mut raw = RawArgs {
        entries: Vec::new(),
        malformed: false,
        errors: None,
    };
    for piece in split_on_commas(attr) {
        if piece.is_empty() {
            continue; // a trailing comma
        }
        let first = piece.clone().into_iter().next().map(|t| t.span());
        let mut value_error = None;
        let parsed = (|input: ParseStream| parse_entry(input, &mut value_error)).parse2(piece);
        match parsed {
            Ok(entry) => raw.entries.push(entry),
            Err(_) => {
                let span = first.unwrap_or_else(Span::call_site);
                push(
                    &mut raw.errors,
                    syn::Error::new(span, "expected `key = value`, e.g. `k = 3`"),
                );
            }
        }
        if let Some(e) = value_error {
            push(&mut raw.errors, e);
        }
        if raw.errors.is_some() {
            raw.malformed = true;
        }
    }
    raw
}

/// `key = value`. A bad key fails the parse; a bad `=` or value is reported in `value_error`
/// and keeps the key, so the key still counts as present.
fn parse_entry(input: ParseStream, value_error: &mut Option<syn::Error>) -> syn::Result<Entry> {
    let key = Ident::parse_any(input)?.unraw();
    let value = match parse_value(input, &key) {
        Ok(value) => Some(value),
        Err(e) => {
            *value_error = Some(e);
            // Skip the rest of the piece; its error is reported once, above.
            input.step(|cursor| {
                let mut rest = *cursor;
                while let Some((_, next)) = rest.token_tree() {
                    rest = next;
                }
                Ok(((), rest))
            })?;
            None
        }
    };
    Ok(Entry { key, value })
}

fn parse_value(input: ParseStream, key: &Ident) -> syn::Result<Value> {
    if input.is_empty() && FLAGS.contains(&key.to_string().as_str()) {
        // A bare flag: `separable` reads as `separable = true`.
        return Ok(Value::Bool(LitBool::new(true, key.span())));
    }
    if !input.peek(Token![=]) {
        // `in 16`: show the fix with the user's own value.
        let value = match input.cursor().literal() {
            Some((lit, _)) => lit.to_string(),
            None => "3".to_owned(),
        };
        return Err(syn::Error::new(
            input.span(),
            format!("expected `=` after `{key}`, e.g. `{key} = {value}`"),
        ));
    }
    input.parse::<Token![=]>()?;
    if input.is_empty() {
        return Err(syn::Error::new(
            input.span(),
            format!("expected a value after `{key} =`"),
        ));
    }
    let expr: Expr = input.parse()?;
    if !input.is_empty() {
        return Err(syn::Error::new(
            input.span(),
            format!(
                "expected `,` after the value of `{key}`, found `{}`",
                input
                    .cursor()
                    .token_tree()
                    .map_or(String::new(), |(t, _)| t.to_string())
            ),
        ));
    }
    Ok(Value::from_expr(expr))
}

/// Top-level comma separated pieces; commas inside `(...)` belong to their group.
fn split_on_commas(attr: TokenStream) -> Vec<TokenStream> {
    let mut pieces = vec![TokenStream::new()];
    for tree in attr {
        match &tree {
            TokenTree::Punct(p) if p.as_char() == ',' => pieces.push(TokenStream::new()),
            _ => pieces.last_mut().expect("never empty").extend([tree]),
        }
    }
    pieces
}

/// Adds `error` to `errors`, keeping every earlier one.
pub fn push(errors: &mut Option<syn::Error>, error: syn::Error) {
    match errors {
        Some(all) => all.combine(error),
        None => *errors = Some(error),
    }
}
