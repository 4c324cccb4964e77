//! A bound on how much a config text may expand into while it is deserialized: YAML aliases.
//!
//! An alias (`*name`) replays the whole node its anchor (`&name`) marks, so a few kilobytes can
//! stand for gigabytes: one list of 10,000 strings aliased by 8,000 routes is 80 million strings
//! from a 64 KiB file. serde_yaml's own guard counts alias *jumps* (at most 100 per event of the
//! document), not the size of what each jump replays, so such a file passes it and the memory
//! runs out while the config structs are built.
//!
//! [`Budgeted`] wraps the YAML deserializer and charges every value the config types take: one
//! unit per node (scalar, sequence, mapping, enum, null) and one per byte of every string. A
//! document without aliases needs less than two units per byte of its text (a node takes at
//! least one byte of text plus its separator, a string's bytes are in the text, and the densest
//! case, an implied null in a flow mapping `{a, b}`, is 1.5 units per byte); so a budget of
//! [`UNITS_PER_BYTE`] per byte never refuses a file without aliases, and bounds what aliases can
//! replay to what a file of that size could hold without them. The wrapper adds one check per
//! value; it is linear in what is deserialized.

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// Units a config may use per byte of its text.
pub(super) const UNITS_PER_BYTE: usize = 2;

/// Units every text may use, however short (a small file with a few aliases is harmless).
pub(super) const MIN_UNITS: usize = 64 * 1024;

/// What is left of the budget of one deserialization.
pub(super) struct Budget {
    left: Cell<usize>,
    limit: usize,
    exceeded: Cell<bool>,
}

impl Budget {
    /// The budget of a text of `len` bytes.
    pub(super) fn for_text(len: usize) -> Budget {
        let limit = len.saturating_mul(UNITS_PER_BYTE).max(MIN_UNITS);
        Budget {
            left: Cell::new(limit),
            limit,
            exceeded: Cell::new(false),
        }
    }

    /// The budget ran out: the error of the deserialization is this, whatever it says.
    #[cfg(test)]
    pub(super) fn exceeded(&self) -> bool {
        self.exceeded.get()
    }

    /// The number of units the text was allowed.
    #[cfg(test)]
    pub(super) fn limit(&self) -> usize {
        self.limit
    }

    fn charge<E: de::Error>(&self, units: usize) -> Result<(), E> {
        match self.left.get().checked_sub(units) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom(format_args!(
                    "the config expands to more than {} values and string bytes (YAML aliases \
                     repeat what they refer to); at most {UNITS_PER_BYTE} per byte of the file \
                     are allowed",
                    self.limit
                )))
            }
        }
    }
}

/// A deserializer that charges what it yields to a [`Budget`].
pub(super) struct Budgeted<'b, D> {
    inner: D,
    budget: &'b Budget,
}

impl<'b, D> Budgeted<'b, D> {
    pub(super) fn new(inner: D, budget: &'b Budget) -> Self {
        Budgeted { inner, budget }
    }
}

/// Forwards `deserialize_*` methods to the inner deserializer with a charging visitor.
macro_rules! forward_deserialize {
    ($($method:ident $(( $($arg:ident : $ty:ty),* ))?;)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($($arg: $ty,)*)? visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($($arg,)*)? Charging { inner: visitor, budget: self.budget })
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Budgeted<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any;
        deserialize_bool;
        deserialize_i8;
        deserialize_i16;
        deserialize_i32;
        deserialize_i64;
        deserialize_i128;
        deserialize_u8;
        deserialize_u16;
        deserialize_u32;
        deserialize_u64;
        deserialize_u128;
        deserialize_f32;
        deserialize_f64;
        deserialize_char;
        deserialize_str;
        deserialize_string;
        deserialize_bytes;
        deserialize_byte_buf;
        deserialize_option;
        deserialize_unit;
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq;
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map;
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier;
        deserialize_ignored_any;
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that charges each value before handing it to the inner visitor.
struct Charging<'b, V> {
    inner: V,
    budget: &'b Budget,
}

/// Visitor methods for scalars: one unit each (plus the bytes for strings).
macro_rules! charge_scalar {
    ($($method:ident($ty:ty) $($bytes:ident)?;)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                #[allow(unused_mut)]
                let mut units = 1;
                $( let $bytes: &[u8] = v.as_ref(); units += $bytes.len(); )?
                self.budget.charge(units)?;
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Charging<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    charge_scalar! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str) bytes;
        visit_string(String) bytes;
        visit_bytes(&[u8]) bytes;
        visit_byte_buf(Vec<u8>) bytes;
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        self.budget.charge(1 + v.len())?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.budget.charge(1 + v.len())?;
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.budget.charge(1)?;
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.budget.charge(1)?;
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.inner.visit_some(Budgeted::new(d, self.budget))
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
        self.inner
            .visit_newtype_struct(Budgeted::new(d, self.budget))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.budget.charge(1)?;
        self.inner.visit_seq(Access {
            inner: seq,
            budget: self.budget,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.budget.charge(1)?;
        self.inner.visit_map(Access {
            inner: map,
            budget: self.budget,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.budget.charge(1)?;
        self.inner.visit_enum(Access {
            inner: data,
            budget: self.budget,
        })
    }
}

/// A seed whose deserializer charges the budget.
struct Seed<'b, S> {
    inner: S,
    budget: &'b Budget,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Budgeted::new(d, self.budget))
    }
}

/// Sequence, map, enum and variant access whose elements charge the budget.
struct Access<'b, A> {
    inner: A,
    budget: &'b Budget,
}

impl<'b, A> Access<'b, A> {
    fn seed<S>(&self, inner: S) -> Seed<'b, S> {
        Seed {
            inner,
            budget: self.budget,
        }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for Access<'b, A> {
    type Error = A::Error;
    type Variant = Access<'b, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let budget = self.budget;
        let (value, variant) = self.inner.variant_seed(Seed {
            inner: seed,
            budget,
        })?;
        Ok((
            value,
            Access {
                inner: variant,
                budget,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Charging {
                inner: visitor,
                budget: self.budget,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Charging {
                inner: visitor,
                budget: self.budget,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Deserializes `text` into a generic YAML value through the budget.
    fn load(text: &str) -> Result<serde_yaml::Value, (bool, String)> {
        let budget = Budget::for_text(text.len());
        let de = serde_yaml::Deserializer::from_str(text);
        serde::Deserialize::deserialize(Budgeted::new(de, &budget))
            .map_err(|e: serde_yaml::Error| (budget.exceeded(), e.to_string()))
    }

    /// A fan-out: one list of `n` strings aliased `m` times.
    fn fan_out(n: usize, m: usize) -> String {
        format!(
            "l: &l [{}]\nr: [{}]\n",
            vec!["b3"; n].join(","),
            vec!["*l"; m].join(",")
        )
    }

    #[test]
    fn budget_table() {
        let dense = format!("[{}]", vec!["{a}"; 30_000].join(","));
        let plain_big = "k: ".to_owned() + &"x".repeat(200_000) + "\n";
        // (text, refused, reason)
        let cases: Vec<(String, bool, &str)> = vec![
            ("a: 1\nb: [x, y]\n".into(), false, "a small file"),
            (
                fan_out(100, 100),
                false,
                "a few aliases fit the minimum budget",
            ),
            (
                fan_out(3000, 2000),
                true,
                "6 million strings from a 16 KiB file",
            ),
            (
                fan_out(10_000, 8000),
                true,
                "80 million strings from a 64 KiB file",
            ),
            (
                dense,
                false,
                "the densest text without aliases (implied nulls) is under two units per byte",
            ),
            (
                plain_big,
                false,
                "one long string costs its bytes, which the file has",
            ),
        ];
        for (text, refused, why) in &cases {
            let r = load(text);
            assert_eq!(r.is_err(), *refused, "{why}: {:?}", r.as_ref().err());
            if let Err((exceeded, msg)) = r {
                assert!(exceeded, "{why}: refused by the budget: {msg}");
                assert!(msg.contains("YAML aliases"), "{why}: says why: {msg}");
            }
        }
    }

    /// The fan-out the config fuzz target's limits run found (1.3 GB before this bound): refused
    /// at load, naming the file, the key where the budget ran out and the reason.
    #[test]
    fn an_alias_fan_out_config_is_refused_with_the_key() {
        let text = format!(
            "listen: [\"127.0.0.1:0\"]\ntelemetry:\n  propagators: &l [{}]\nroutes: [&r {{ name: r, match: {{ methods: *l }}, respond: {{ status: 200 }} }}, {}]\n",
            vec!["b3"; 10_000].join(","),
            vec!["*r"; 8000].join(",")
        );
        let env = std::collections::HashMap::<&str, &str>::new();
        let e = crate::config::load_str(&text, "fan.yaml", &env).unwrap_err();
        assert_eq!(e.file, "fan.yaml");
        assert!(e.key.starts_with("routes["), "the key: {}", e.key);
        assert!(
            e.reason.contains("YAML aliases"),
            "the reason: {}",
            e.reason
        );
    }

    /// Every config file shipped and a generated big file without aliases stay under the
    /// budget: it only ever refuses what aliases replay.
    #[test]
    fn files_without_aliases_are_never_refused() {
        for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(load(&text).is_ok(), "{}", path.display());
        }
        let mut big = String::from("routes:\n");
        for i in 0..20_000 {
            big.push_str(&format!(
                "  - {{ name: r{i}, match: {{ path_prefix: /p{i}/, methods: [GET, POST] }}, upstream: u }}\n"
            ));
        }
        let budget = Budget::for_text(big.len());
        let de = serde_yaml::Deserializer::from_str(&big);
        let v: BTreeMap<String, serde_yaml::Value> =
            serde::Deserialize::deserialize(Budgeted::new(de, &budget)).unwrap();
        assert_eq!(v["routes"].as_sequence().unwrap().len(), 20_000);
        assert!(
            budget.left.get() > budget.limit() / 2,
            "well under the budget"
        );
    }
}
