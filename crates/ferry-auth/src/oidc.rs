//! Single sign-on: an OpenID Connect provider's ID tokens, sent as Bearer,
//! verified against the provider's keys (a JWKS document) with no call to
//! the provider per request.
//!
//! - Only `RS256` and `ES256` are accepted; `none`, the `HS*` family (a
//!   shared secret a public key could be mistaken for) and anything else
//!   are refused before a key is looked at.
//! - The key is the JWKS entry the token's `kid` names (else the only key
//!   of the algorithm's type); the signature is checked with `ring`.
//! - `iss` must be the configured issuer, `aud` (a string or a list) must
//!   hold the configured audience, `exp` must be ahead and `nbf`, when
//!   present, behind, each within a minute's leeway.
//! - Who: the configured claim (`preferred_username`, `email`, `sub`);
//!   groups: the configured claim (a list of strings, or one), which the
//!   servers map to ferry's groups of the same names.

use base64::Engine as _;
use serde_json::Value;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_S: i64 = 60;

/// What the operator configures (`ferry server --oidc-*`).
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// The claim that names the user.
    pub user_claim: String,
    /// The claim that lists the user's groups, if any.
    pub groups_claim: Option<String>,
}

/// Who an ID token says is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
    /// When the token expires (`exp`), in milliseconds.
    pub expires_ms: i64,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    #[error("the JWKS document is not usable: {0}")]
    Jwks(String),
    #[error("not a JSON web token: {0}")]
    Malformed(&'static str),
    #[error("algorithm `{0}` is not accepted (RS256 or ES256)")]
    Algorithm(String),
    #[error("no key of the provider's matches the token")]
    UnknownKey,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYet,
    #[error("the token was issued by another issuer")]
    Issuer,
    #[error("the token is meant for another audience")]
    Audience,
    #[error("the token has no `{0}` claim naming the user")]
    NoUser(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alg {
    Rs256,
    Es256,
}

#[derive(Debug)]
enum PublicKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point: 0x04, x, y.
    P256(Vec<u8>),
}

#[derive(Debug)]
struct Jwk {
    kid: Option<String>,
    key: PublicKey,
}

impl Jwk {
    fn fits(&self, alg: Alg) -> bool {
        matches!(
            (alg, &self.key),
            (Alg::Rs256, PublicKey::Rsa { .. }) | (Alg::Es256, PublicKey::P256(_))
        )
    }
}

/// A provider's verifier: its configuration and keys.
#[derive(Debug)]
pub struct Provider {
    config: OidcConfig,
    keys: Vec<Jwk>,
}

fn b64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

fn jwk(v: &Value) -> Result<Option<Jwk>, OidcError> {
    let field = |k: &str| -> Result<Vec<u8>, OidcError> {
        v[k].as_str()
            .and_then(b64)
            .ok_or_else(|| OidcError::Jwks(format!("a key's `{k}` is missing or not base64url")))
    };
    // Keys for encryption only are not ours to use.
    if v["use"].as_str().is_some_and(|u| u != "sig") {
        return Ok(None);
    }
    let key = match (v["kty"].as_str(), v["crv"].as_str()) {
        (Some("RSA"), _) => PublicKey::Rsa {
            n: field("n")?,
            e: field("e")?,
        },
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (field("x")?, field("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err(OidcError::Jwks("a P-256 key's x and y are 32 bytes".into()));
            }
            let mut point = vec![4u8];
            point.extend(x);
            point.extend(y);
            PublicKey::P256(point)
        }
        // Other key types (other curves, symmetric keys) are skipped.
        _ => return Ok(None),
    };
    Ok(Some(Jwk {
        kid: v["kid"].as_str().map(str::to_owned),
        key,
    }))
}

impl Provider {
    /// A verifier for `config` with the keys of `jwks` (a JWKS document:
    /// `{"keys": [...]}`).
    pub fn new(config: OidcConfig, jwks: &str) -> Result<Self, OidcError> {
        let doc: Value =
            serde_json::from_str(jwks).map_err(|e| OidcError::Jwks(format!("not JSON: {e}")))?;
        let listed = doc["keys"]
            .as_array()
            .ok_or_else(|| OidcError::Jwks("no `keys` list".into()))?;
        let mut keys = Vec::new();
        for v in listed {
            keys.extend(jwk(v)?);
        }
        if keys.is_empty() {
            return Err(OidcError::Jwks("no RSA or P-256 signing key".into()));
        }
        Ok(Self { config, keys })
    }

    /// Whether `token` is shaped like a JSON web token (three base64url
    /// parts), so a server tries this verifier on it.
    pub fn looks_like_jwt(token: &str) -> bool {
        token.split('.').count() == 3 && token.starts_with("eyJ")
    }

    /// Who `token` says is calling, if it verifies at `now_s` (seconds).
    pub fn verify(&self, token: &str, now_s: i64) -> Result<Identity, OidcError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(OidcError::Malformed("not three parts"));
        };
        let header: Value = b64(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(OidcError::Malformed("the header is not base64url JSON"))?;
        let alg = match header["alg"].as_str() {
            Some("RS256") => Alg::Rs256,
            Some("ES256") => Alg::Es256,
            other => return Err(OidcError::Algorithm(other.unwrap_or("").to_owned())),
        };
        let kid = header["kid"].as_str();
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
        let key = match kid {
            Some(kid) => fitting.find(|k| k.kid.as_deref() == Some(kid)),
            None => match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            },
        }
        .ok_or(OidcError::UnknownKey)?;
        let signature = b64(s).ok_or(OidcError::Malformed("the signature is not base64url"))?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let ok = match &key.key {
            PublicKey::Rsa { n, e } => ring::signature::RsaPublicKeyComponents { n, e }
                .verify(
                    &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                    signed,
                    &signature,
                )
                .is_ok(),
            PublicKey::P256(point) => ring::signature::UnparsedPublicKey::new(
                &ring::signature::ECDSA_P256_SHA256_FIXED,
                point,
            )
            .verify(signed, &signature)
            .is_ok(),
        };
        if !ok {
            return Err(OidcError::BadSignature);
        }
        let claims: Value = b64(p)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(OidcError::Malformed("the payload is not base64url JSON"))?;
        self.identity(&claims, now_s)
    }

    /// The identity in verified `claims`, if they are for us and current.
    fn identity(&self, claims: &Value, now_s: i64) -> Result<Identity, OidcError> {
        let c = &self.config;
        if claims["iss"].as_str() != Some(c.issuer.as_str()) {
            return Err(OidcError::Issuer);
        }
        let for_us = match &claims["aud"] {
            Value::String(a) => *a == c.audience,
            Value::Array(all) => all.iter().any(|a| a.as_str() == Some(c.audience.as_str())),
            _ => false,
        };
        if !for_us {
            return Err(OidcError::Audience);
        }
        let exp = claims["exp"].as_i64().ok_or(OidcError::Expired)?;
        if exp + LEEWAY_S <= now_s {
            return Err(OidcError::Expired);
        }
        if claims["nbf"]
            .as_i64()
            .is_some_and(|nbf| nbf - LEEWAY_S > now_s)
        {
            return Err(OidcError::NotYet);
        }
        let user = claims[c.user_claim.as_str()]
            .as_str()
            .map(str::trim)
            .filter(|u| !u.is_empty() && !u.chars().any(char::is_control))
            .ok_or_else(|| OidcError::NoUser(c.user_claim.clone()))?;
        let groups = match c.groups_claim.as_deref().map(|g| &claims[g]) {
            Some(Value::Array(gs)) => gs
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            user: user.to_owned(),
            groups,
            expires_ms: exp.saturating_mul(1000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn enc(b: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    struct Issuer {
        key: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl Issuer {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { key, rng }
        }

        fn jwks(&self, kid: &str) -> String {
            let p = self.key.public_key().as_ref();
            serde_json::json!({"keys": [
                {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "x": enc(&p[1..33]), "y": enc(&p[33..65])}
            ]})
            .to_string()
        }

        fn token(&self, header: Value, claims: Value) -> String {
            let signed = format!(
                "{}.{}",
                enc(header.to_string().as_bytes()),
                enc(claims.to_string().as_bytes())
            );
            let sig = self.key.sign(&self.rng, signed.as_bytes()).unwrap();
            format!("{signed}.{}", enc(sig.as_ref()))
        }
    }

    fn config() -> OidcConfig {
        OidcConfig {
            issuer: "https://idp.example".into(),
            audience: "ferry".into(),
            user_claim: "preferred_username".into(),
            groups_claim: Some("groups".into()),
        }
    }

    fn claims() -> Value {
        serde_json::json!({
            "iss": "https://idp.example", "aud": ["other", "ferry"], "exp": 2_000,
            "preferred_username": "ana", "groups": ["scientists", "oncall"]
        })
    }

    #[test]
    fn a_signed_current_token_for_us_names_its_user_and_groups() {
        let idp = Issuer::new();
        let p = Provider::new(config(), &idp.jwks("k1")).unwrap();
        let t = idp.token(serde_json::json!({"alg": "ES256", "kid": "k1"}), claims());
        assert!(Provider::looks_like_jwt(&t));
        assert_eq!(
            p.verify(&t, 1_000),
            Ok(Identity {
                user: "ana".into(),
                groups: vec!["scientists".into(), "oncall".into()],
                expires_ms: 2_000_000
            })
        );
    }

    #[test]
    fn every_way_a_token_can_be_wrong_is_refused_with_its_reason() {
        let idp = Issuer::new();
        let p = Provider::new(config(), &idp.jwks("k1")).unwrap();
        let es = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            idp.token(es.clone(), c)
        };
        let good = idp.token(es.clone(), claims());
        let (h, rest) = good.split_once('.').unwrap();
        let (_, sig) = rest.split_once('.').unwrap();
        let mut other = claims();
        other["preferred_username"] = "root".into();
        let forged = format!("{h}.{}.{sig}", enc(other.to_string().as_bytes()));
        let unsigned = format!(
            "{}.{}.",
            enc(br#"{"alg":"none"}"#),
            enc(claims().to_string().as_bytes())
        );
        let hs = format!(
            "{}.{}.{sig}",
            enc(br#"{"alg":"HS256","kid":"k1"}"#),
            enc(claims().to_string().as_bytes())
        );
        let stranger = Issuer::new().token(es.clone(), claims());
        let cases = [
            (forged, OidcError::BadSignature),
            (stranger, OidcError::BadSignature),
            (unsigned, OidcError::Algorithm("none".into())),
            (hs, OidcError::Algorithm("HS256".into())),
            (
                idp.token(serde_json::json!({"alg": "ES256", "kid": "k9"}), claims()),
                OidcError::UnknownKey,
            ),
            (
                with("iss", "https://evil.example".into()),
                OidcError::Issuer,
            ),
            (with("aud", "other".into()), OidcError::Audience),
            (with("exp", 900.into()), OidcError::Expired),
            (with("nbf", 1_100.into()), OidcError::NotYet),
            (
                with("preferred_username", "".into()),
                OidcError::NoUser("preferred_username".into()),
            ),
            ("a.b".to_owned(), OidcError::Malformed("not three parts")),
        ];
        for (t, want) in cases {
            assert_eq!(p.verify(&t, 1_000), Err(want.clone()), "{want}");
        }
        // Within the leeway: a minute either way.
        assert!(p.verify(&with("exp", 990.into()), 1_000).is_ok());
        assert!(p.verify(&with("nbf", 1_030.into()), 1_000).is_ok());
    }

    #[test]
    fn an_rs256_token_verifies_with_the_rsa_key_it_names() {
        // A 2048-bit test key (tests only), its JWK made from its public half.
        let der = include_bytes!("testdata/rsa2048.pk8");
        let key = ring::signature::RsaKeyPair::from_pkcs8(der).unwrap();
        let public: ring::rsa::PublicKeyComponents<Vec<u8>> = key.public().into();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "r1", "n": enc(&public.n), "e": enc(&public.e)}]});
        let p = Provider::new(config(), &jwks.to_string()).unwrap();
        let signed = format!(
            "{}.{}",
            enc(br#"{"alg":"RS256","kid":"r1"}"#),
            enc(claims().to_string().as_bytes())
        );
        let mut sig = vec![0; key.public().modulus_len()];
        key.sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            signed.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let t = format!("{signed}.{}", enc(&sig));
        assert_eq!(p.verify(&t, 1_000).unwrap().user, "ana");
        // The same token claiming ES256 finds no key of that type.
        let es = format!(
            "{}.{}",
            enc(br#"{"alg":"ES256","kid":"r1"}"#),
            t.split_once('.').unwrap().1
        );
        assert_eq!(p.verify(&es, 1_000), Err(OidcError::UnknownKey));
    }

    #[test]
    fn a_jwks_without_signing_keys_is_refused_at_start() {
        assert!(matches!(
            Provider::new(config(), "{}"),
            Err(OidcError::Jwks(_))
        ));
        assert!(matches!(
            Provider::new(config(), r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#),
            Err(OidcError::Jwks(_))
        ));
    }
}
