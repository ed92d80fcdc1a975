//! Seeds as TOML values: any `u64`. TOML integers stop at `i64::MAX`, so a larger
//! seed is written as a string of digits, and both forms are read — in files and
//! in `--set seed=…` alike (where an integer too large for TOML arrives as text).

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};

struct Seed;

impl<'de> Visitor<'de> for Seed {
    type Value = u64;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a seed: an integer in 0..={}", u64::MAX)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("seed {v} is negative; valid: 0..={}", u64::MAX)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::custom(format!("seed `{v}` is not an integer in 0..={}", u64::MAX)))
    }
}

/// `#[serde(with = "crate::seed")]` for a `u64` seed.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_any(Seed)
}

/// Writes a seed as an integer, or as a string above `i64::MAX`.
pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    match i64::try_from(*v) {
        Ok(i) => s.serialize_i64(i),
        Err(_) => s.serialize_str(&v.to_string()),
    }
}

/// `#[serde(with = "crate::seed::list")]` for a list of seeds.
pub mod list {
    use super::*;

    struct Seeds;

    impl<'de> Visitor<'de> for Seeds {
        type Value = Vec<u64>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of seeds, integers in 0..={}", u64::MAX)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u64>, A::Error> {
            let mut out = Vec::new();
            while let Some(One(v)) = a.next_element()? {
                out.push(v);
            }
            Ok(out)
        }
    }

    struct One(u64);

    impl<'de> serde::Deserialize<'de> for One {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<One, D::Error> {
            super::deserialize(d).map(One)
        }
    }

    /// Reads a list of seeds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        d.deserialize_seq(Seeds)
    }

    /// Writes a list of seeds.
    pub fn serialize<S: Serializer>(v: &[u64], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for x in v {
            match i64::try_from(*x) {
                Ok(i) => seq.serialize_element(&i)?,
                Err(_) => seq.serialize_element(&x.to_string())?,
            }
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct C {
        #[serde(with = "super")]
        seed: u64,
        #[serde(with = "super::list")]
        seeds: Vec<u64>,
    }

    #[test]
    fn every_u64_round_trips_through_toml() {
        for c in [
            C {
                seed: 0,
                seeds: vec![1, 2],
            },
            C {
                seed: u64::MAX,
                seeds: vec![i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX],
            },
        ] {
            let text = toml::to_string(&c).unwrap();
            assert_eq!(toml::from_str::<C>(&text).unwrap(), c, "{text}");
        }
        let c: C = toml::from_str("seed = \"18446744073709551615\"\nseeds = [3]").unwrap();
        assert_eq!(c.seed, u64::MAX);
        let e = toml::from_str::<C>("seed = -1\nseeds = []").unwrap_err().to_string();
        assert!(e.contains("negative") && e.contains("0..=18446744073709551615"), "{e}");
        let e = toml::from_str::<C>("seed = \"x\"\nseeds = []").unwrap_err().to_string();
        assert!(e.contains("not an integer"), "{e}");
    }
}
