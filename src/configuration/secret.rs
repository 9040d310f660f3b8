//! A secret setting: never printed, and never blank, because an empty secret compared against an
//! empty credential would switch on a check that anyone passes.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

/// A secret of at least `MIN_CHARS` characters, trimmed at load. Secrets the operator invents
/// (admin token, shared secret, a CRM's webhook password) use [`INVENTED_MIN_CHARS`]; secrets
/// issued by someone else (Tallyfy or CRM tokens, app secrets) only have to be non-blank.
#[derive(Clone)]
pub struct Secret<const MIN_CHARS: usize = 1>(SecretString);

/// The least length of a secret an operator makes up: 16 random characters are beyond guessing,
/// a word or a short phrase is not. `openssl rand -hex 32` makes a good one.
pub const INVENTED_MIN_CHARS: usize = 16;

/// A secret the operator makes up, held to [`INVENTED_MIN_CHARS`].
pub type InventedSecret = Secret<INVENTED_MIN_CHARS>;

impl<const MIN_CHARS: usize> Secret<MIN_CHARS> {
    /// The value trimmed, or why it cannot be a secret.
    pub fn new(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.is_empty() {
            return Err(
                "is set but empty: a blank secret would let anyone in (give it a value, or unset the key)"
                    .into(),
            );
        }
        let chars = value.chars().count();
        if chars < MIN_CHARS {
            return Err(format!(
                "must be at least {MIN_CHARS} characters (it has {chars}); make one with `openssl rand -hex 32`"
            ));
        }
        Ok(Self(SecretString::from(value.to_owned())))
    }

    /// The same secret in `secrecy`'s type, for the clients that hold it.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl<const MIN_CHARS: usize> ExposeSecret<str> for Secret<MIN_CHARS> {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<const MIN_CHARS: usize> fmt::Debug for Secret<MIN_CHARS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl<const MIN_CHARS: usize> std::str::FromStr for Secret<MIN_CHARS> {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Self::new(value)
    }
}

impl<'de, const MIN_CHARS: usize> Deserialize<'de> for Secret<MIN_CHARS> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `config` adds the key to the message: "… for key `admin.token` in the environment".
        let value = String::deserialize(deserializer)?;
        Self::new(&value).map_err(serde::de::Error::custom)
    }
}

/// An optional plain setting (a user name, a URL, an id) that must not be blank once given:
/// half-set keys would otherwise pass as "not configured" in one place and "on" in another.
pub fn non_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(value) if value.trim().is_empty() => Err(serde::de::Error::custom(
            "is set but empty (give it a value, or unset the key)",
        )),
        other => Ok(other.map(|v| v.trim().to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_short_secrets_are_refused_and_none_prints() {
        assert!(Secret::<1>::new("").is_err());
        assert!(Secret::<1>::new(" \t\n").is_err());
        assert!(InventedSecret::new("fifteen-chars-x").is_err());
        let secret = InventedSecret::new("  sixteen-chars-xy  ").expect("16 characters");
        assert_eq!(secret.expose_secret(), "sixteen-chars-xy");
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        // Characters, not bytes: four 4-byte characters are four.
        assert!(Secret::<5>::new("🔑🔑🔑🔑").is_err());
    }
}
