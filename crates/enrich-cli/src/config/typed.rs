//! Typing a YAML value with serde, where a problem is data rather than text: which field, what was
//! expected and what was found, worded for the person editing the file; and every problem of a value
//! found in one pass, by dropping each faulty field and typing the rest again.

use std::fmt;

use enrich_core::FieldError;
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, DeserializeOwned, Expected, IntoDeserializer, Unexpected, Visitor};
use serde_norway::Value;
use serde_path_to_error::Segment;

/// What serde found wrong with a value, kept as parts so that it can be said in plain words.
#[derive(Debug, Clone, PartialEq)]
pub enum Problem {
    /// The value has the wrong kind (`got` a string where a number was `expected`) or is out of range.
    Mismatch {
        expected: String,
        got: String,
    },
    Length {
        expected: String,
        got: usize,
    },
    UnknownVariant {
        given: String,
        known: &'static [&'static str],
    },
    UnknownField {
        known: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
    Other(String),
}

impl de::Error for Problem {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Self::Other(message.to_string())
    }

    fn invalid_type(got: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::Mismatch { expected: in_words(expected), got: found(&got) }
    }

    fn invalid_value(got: Unexpected<'_>, expected: &dyn Expected) -> Self {
        Self::invalid_type(got, expected)
    }

    fn invalid_length(got: usize, expected: &dyn Expected) -> Self {
        Self::Length { expected: expected.to_string(), got }
    }

    fn unknown_variant(given: &str, known: &'static [&'static str]) -> Self {
        Self::UnknownVariant { given: given.to_owned(), known }
    }

    fn unknown_field(_: &str, known: &'static [&'static str]) -> Self {
        Self::UnknownField { known }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::MissingField(field)
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::DuplicateField(field)
    }
}

impl std::error::Error for Problem {}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch { expected, got } => write!(f, "expected {expected}, got {got}"),
            Self::Length { expected, got } => write!(f, "expected {expected}, got {got} items"),
            Self::UnknownVariant { given, known } => {
                write!(f, "unknown value `{given}`; expected one of {}", listed(known))
            }
            Self::UnknownField { known: [] } => f.write_str("unknown field; none is expected here"),
            Self::UnknownField { known } => write!(f, "unknown field; the fields here are {}", listed(known)),
            Self::MissingField(_) => f.write_str("missing; this field is required"),
            Self::DuplicateField(_) => f.write_str("given twice"),
            Self::Other(message) => f.write_str(message),
        }
    }
}

/// `a`, `b`, `c`.
pub fn listed(names: &[&str]) -> String {
    names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
}

/// What serde expected, said as the config file's author would: serde names Rust types.
fn in_words(expected: &dyn Expected) -> String {
    let rust = expected.to_string();
    let words = match rust.as_str() {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number (negative allowed)",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a string" | "a borrowed string" | "path string" | "a character" => "text",
        "a duration" => "a duration such as 30s, 15m, 24h or 7d",
        "a sequence" => "a list",
        _ if rust.starts_with("struct ") || rust.contains("map") => "a mapping of `field: value` lines",
        _ => return rust,
    };
    words.to_owned()
}

/// What the file holds, briefly.
fn found(got: &Unexpected<'_>) -> String {
    match got {
        Unexpected::Str(text) => format!("{text:?}"),
        Unexpected::Bool(value) => value.to_string(),
        Unexpected::Unsigned(value) => value.to_string(),
        Unexpected::Signed(value) => value.to_string(),
        Unexpected::Float(value) => value.to_string(),
        Unexpected::Char(value) => format!("{:?}", value.to_string()),
        Unexpected::Unit | Unexpected::Option => "nothing".to_owned(),
        Unexpected::Seq => "a list".to_owned(),
        Unexpected::Map => "a mapping".to_owned(),
        other => other.to_string(),
    }
}

/// A YAML value as a serde deserializer whose errors are `Problem`s.
#[derive(Debug)]
struct Yaml(Value);

impl<'de> IntoDeserializer<'de, Problem> for Yaml {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

fn entries(mapping: serde_norway::Mapping) -> impl Iterator<Item = (Yaml, Yaml)> {
    mapping.into_iter().map(|(key, value)| (Yaml(key), Yaml(value)))
}

impl<'de> de::Deserializer<'de> for Yaml {
    type Error = Problem;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(value),
            Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
                (Some(value), _, _) => visitor.visit_u64(value),
                (None, Some(value), _) => visitor.visit_i64(value),
                (None, None, value) => visitor.visit_f64(value.unwrap_or(f64::NAN)),
            },
            Value::String(text) => visitor.visit_string(text),
            Value::Sequence(items) => {
                let mut items = SeqDeserializer::new(items.into_iter().map(Yaml));
                let value = visitor.visit_seq(&mut items)?;
                items.end()?;
                Ok(value)
            }
            Value::Mapping(mapping) => {
                let mut entries = MapDeserializer::new(entries(mapping));
                let value = visitor.visit_map(&mut entries)?;
                entries.end()?;
                Ok(value)
            }
            Value::Tagged(tagged) => {
                Err(Problem::Other(format!("YAML tags such as `{}` are not used in this file", tagged.tag)))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    /// YAML writes `app_id: 12345` for the text "12345": a number reads as text where text is expected.
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        match self.0 {
            Value::Number(number) => visitor.visit_string(number.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Problem> {
        self.deserialize_string(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Problem> {
        visitor.visit_newtype_struct(self)
    }

    /// `variant` or `{variant: content}`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Problem> {
        match self.0 {
            Value::String(variant) => visitor.visit_enum(variant.into_deserializer()),
            Value::Mapping(mapping) if mapping.len() == 1 => {
                visitor.visit_enum(MapAccessDeserializer::new(MapDeserializer::new(entries(mapping))))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// Types `value` as `T`; on failure, every problem found, each named by the path of its field
/// (`source.max_concurrency`, empty for the value itself).
pub fn typed<T: DeserializeOwned>(mut value: Value) -> Result<T, Vec<FieldError>> {
    let mut problems: Vec<FieldError> = Vec::new();
    loop {
        let error = match serde_path_to_error::deserialize::<_, T>(Yaml(value.clone())) {
            Ok(typed) if problems.is_empty() => return Ok(typed),
            Ok(_) => return Err(problems),
            Err(error) => error,
        };
        let segments: Vec<Segment> = error.path().iter().cloned().collect();
        let problem = error.into_inner();
        let mut field = path(&segments);
        if let Problem::MissingField(name) = problem {
            field = joined(&field, name);
            // A field dropped below for its own problem is not missing as well.
            if !problems.iter().any(|known| known.field == field) {
                problems.push(FieldError::new(field, problem.to_string()));
            }
            return Err(problems);
        }
        problems.push(FieldError::new(field, problem.to_string()));
        if segments.is_empty() || !remove(&mut value, &segments) {
            return Err(problems);
        }
    }
}

/// The names `T`'s variants are written with, asked from serde itself.
pub fn variants<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(Yaml(Value::String(String::new()))) {
        Err(Problem::UnknownVariant { known, .. }) => known,
        _ => &[],
    }
}

/// `a.b[2].c`; enum variants are the `type:` of a section, not a field, and are left out.
fn path(segments: &[Segment]) -> String {
    segments.iter().fold(String::new(), |at, segment| match segment {
        Segment::Map { key } => joined(&at, key),
        Segment::Seq { index } => format!("{at}[{index}]"),
        Segment::Enum { .. } => at,
        Segment::Unknown => joined(&at, "?"),
    })
}

/// `at.field`, or either alone when the other is empty.
pub fn joined(at: &str, field: &str) -> String {
    match (at.is_empty(), field.is_empty()) {
        (true, _) => field.to_owned(),
        (false, true) => at.to_owned(),
        (false, false) => format!("{at}.{field}"),
    }
}

/// Drops the field at `segments`; false when there is no such field.
fn remove(value: &mut Value, segments: &[Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else { return false };
    let mut parent = value;
    for segment in parents {
        let child = match (segment, parent) {
            (Segment::Map { key } | Segment::Enum { variant: key }, Value::Mapping(mapping)) => {
                mapping.get_mut(key.as_str())
            }
            (Segment::Seq { index }, Value::Sequence(items)) => items.get_mut(*index),
            _ => None,
        };
        let Some(child) = child else { return false };
        parent = child;
    }
    match (last, parent) {
        (Segment::Map { key } | Segment::Enum { variant: key }, Value::Mapping(mapping)) => {
            mapping.shift_remove(key.as_str()).is_some()
        }
        // Dropping an item would renumber the rest: the first problem of a list is enough.
        _ => false,
    }
}
