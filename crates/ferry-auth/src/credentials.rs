//! What a request says about who sends it: the `Authorization` header as
//! the stock `mlflow` client writes it (`Basic` when both
//! `MLFLOW_TRACKING_USERNAME` and `MLFLOW_TRACKING_PASSWORD` are set, else
//! `Bearer` with `MLFLOW_TRACKING_TOKEN`), and the refusal a request without
//! acceptable credentials gets, byte for byte MLflow's.

use base64::Engine as _;

/// Credentials a request carries. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, <password>)"),
            Self::Bearer { .. } => f.write_str("Bearer(<token>)"),
        }
    }
}

/// MLflow's body for a 401 (sent with [`WWW_AUTHENTICATE`]).
pub const UNAUTHENTICATED: &str = "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.";

/// MLflow's `WWW-Authenticate` value on a 401.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"mlflow\"";

/// MLflow's body for a 403.
pub const FORBIDDEN: &str = "Permission denied";

/// Reads an `Authorization` header value. `None` when it is absent, names
/// another scheme, or is malformed (not base64, not UTF-8, no `:`, an empty
/// user name or token): all of them are simply unauthenticated, and say no
/// more than that.
pub fn parse_authorization(header: Option<&str>) -> Option<Credentials> {
    let (scheme, rest) = header?.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (username, password) = text.split_once(':')?;
        (!username.is_empty()).then(|| Credentials::Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        })
    } else if scheme.eq_ignore_ascii_case("bearer") {
        (!rest.is_empty() && !rest.contains(char::is_whitespace)).then(|| Credentials::Bearer {
            token: rest.to_owned(),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(s: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    }

    #[test]
    fn basic_and_bearer_are_read_as_the_mlflow_client_sends_them() {
        assert_eq!(
            parse_authorization(Some(&basic("ana:pass:with:colons"))),
            Some(Credentials::Basic {
                username: "ana".into(),
                password: "pass:with:colons".into()
            })
        );
        assert_eq!(
            parse_authorization(Some("bearer ferry_abc")),
            Some(Credentials::Bearer {
                token: "ferry_abc".into()
            })
        );
        for bad in [
            None,
            Some(""),
            Some("Basic"),
            Some("Basic !!!"),
            Some(basic("no-colon").as_str()),
            Some(basic(":empty-user").as_str()),
            Some("Bearer "),
            Some("Bearer a b"),
            Some("Digest x"),
        ] {
            assert_eq!(parse_authorization(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let c = parse_authorization(Some(&basic("ana:hunter2-hunter2"))).unwrap();
        assert_eq!(format!("{c:?}"), "Basic(ana, <password>)");
        let t = Credentials::Bearer {
            token: "ferry_0123_secret".into(),
        };
        assert!(!format!("{t:?}").contains("secret"));
    }
}
