//! The process runtimes a gateway may start, as its operator defined them
//! (`ferry serve --runtime ...`): a name, a program and a fixed argument
//! template. Registry data never becomes a command: a version can only
//! *name* a runtime from this list (tag `ferry.serve.runtime`), or be
//! matched to one by its MLflow flavour; the model's folder and port are
//! substituted into single arguments and the program is started without a
//! shell.

use std::path::Path;

/// The tag by which a version names one of the gateway's runtimes.
pub const RUNTIME_TAG: &str = "ferry.serve.runtime";
/// The tag older gateways ran as a shell command; refused at load.
pub const LEGACY_COMMAND_TAG: &str = "ferry.serve.command";

/// The placeholders a template may use, each inside one argument.
const PLACEHOLDERS: [&str; 3] = ["{model_dir}", "{port}", "{host}"];

/// One runtime: `argv[0]` is the program (fixed), the rest its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeDef {
    pub name: String,
    pub argv: Vec<String>,
    /// MLflow flavours (keys of `MLmodel`'s `flavors`) served by default
    /// with this runtime when a version names none.
    pub flavors: Vec<String>,
    /// Rows go to it as MLflow's `dataframe_split` with the version's
    /// signature columns (the MLflow scoring server checks them against the
    /// model's schema); otherwise as `{"inputs": rows}`.
    pub dataframe: bool,
}

/// A command ready to start: program and arguments, no shell involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

impl RuntimeDef {
    /// The built-in runtime for MLflow pyfunc models: `mlflow models serve`
    /// from the gateway's own environment (the `mlflow` on its PATH).
    pub fn mlflow() -> Self {
        RuntimeDef {
            name: "mlflow".into(),
            argv: [
                "mlflow",
                "models",
                "serve",
                "-m",
                "{model_dir}",
                "-h",
                "{host}",
                "-p",
                "{port}",
                "--env-manager",
                "local",
            ]
            .map(String::from)
            .to_vec(),
            flavors: vec!["python_function".into()],
            dataframe: true,
        }
    }

    /// The command for one model: placeholders replaced argument by argument.
    pub fn command(&self, model_dir: &Path, port: u16) -> Command {
        let dir = model_dir.to_string_lossy();
        let port = port.to_string();
        let fill = |a: &String| {
            a.replace("{model_dir}", &dir)
                .replace("{port}", &port)
                .replace("{host}", "127.0.0.1")
        };
        Command {
            program: self.argv[0].clone(),
            args: self.argv[1..].iter().map(fill).collect(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    #[error(
        "--runtime `{0}`: expected `mlflow` or `NAME=PROGRAM ARGS...` (e.g. `pyfunc=mlflow models serve -m {{model_dir}} -p {{port}} --env-manager local`)"
    )]
    Shape(String),
    #[error(
        "--runtime `{0}`: a name has lower-case letters, digits, `-` and `_` only (at most 64)"
    )]
    Name(String),
    #[error("--runtime `{0}`: the template cannot be split into words (an unclosed quote?)")]
    Split(String),
    #[error(
        "--runtime `{name}`: unknown placeholder `{found}` (known: {{model_dir}}, {{port}}, {{host}})"
    )]
    Placeholder { name: String, found: String },
    #[error("--runtime `{0}`: the program must be fixed, not a placeholder")]
    Program(String),
    #[error("--runtime `{0}` is defined twice")]
    Duplicate(String),
}

/// The gateway's allow-list of runtimes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runtimes(Vec<RuntimeDef>);

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// The first `{...}` in `arg` that is not a known placeholder.
fn unknown_placeholder(arg: &str) -> Option<String> {
    let mut rest = arg;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i..];
        match PLACEHOLDERS.iter().find(|p| tail.starts_with(*p)) {
            Some(p) => rest = &tail[p.len()..],
            None => {
                let end = tail.find('}').map_or(tail.len(), |j| j + 1);
                return Some(tail[..end].to_owned());
            }
        }
    }
    None
}

impl Runtimes {
    /// Parses every `--runtime` value; all errors at once.
    pub fn parse(specs: &[String]) -> Result<Self, Vec<RuntimeError>> {
        let mut defs: Vec<RuntimeDef> = Vec::new();
        let mut errors = Vec::new();
        for spec in specs {
            match Self::parse_one(spec) {
                Ok(d) if defs.iter().any(|x| x.name == d.name) => {
                    errors.push(RuntimeError::Duplicate(d.name))
                }
                Ok(d) => defs.push(d),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(Runtimes(defs))
        } else {
            Err(errors)
        }
    }

    fn parse_one(spec: &str) -> Result<RuntimeDef, RuntimeError> {
        let spec = spec.trim();
        let Some((name, template)) = spec.split_once('=') else {
            return match spec {
                "mlflow" => Ok(RuntimeDef::mlflow()),
                "" => Err(RuntimeError::Shape(spec.into())),
                n if valid_name(n) => Err(RuntimeError::Shape(spec.into())),
                n => Err(RuntimeError::Name(n.into())),
            };
        };
        let name = name.trim();
        if !valid_name(name) {
            return Err(RuntimeError::Name(name.into()));
        }
        let argv = shlex::split(template).ok_or_else(|| RuntimeError::Split(name.into()))?;
        let Some(program) = argv.first() else {
            return Err(RuntimeError::Shape(spec.into()));
        };
        if program.contains('{') {
            return Err(RuntimeError::Program(name.into()));
        }
        if let Some(found) = argv.iter().find_map(|a| unknown_placeholder(a)) {
            return Err(RuntimeError::Placeholder {
                name: name.into(),
                found,
            });
        }
        // A user-defined `mlflow` replaces the built-in's command only.
        let builtin = (name == "mlflow").then(RuntimeDef::mlflow);
        Ok(RuntimeDef {
            name: name.into(),
            argv,
            flavors: builtin
                .as_ref()
                .map(|b| b.flavors.clone())
                .unwrap_or_default(),
            dataframe: builtin.is_some(),
        })
    }

    pub fn get(&self, name: &str) -> Option<&RuntimeDef> {
        self.0.iter().find(|d| d.name == name)
    }

    /// The runtime that serves one of `flavors` by default.
    pub fn for_flavors<'a>(
        &self,
        flavors: impl IntoIterator<Item = &'a str>,
    ) -> Option<&RuntimeDef> {
        let flavors: Vec<&str> = flavors.into_iter().collect();
        self.0
            .iter()
            .find(|d| d.flavors.iter().any(|f| flavors.contains(&f.as_str())))
    }

    /// The defined names, for messages (`none` when empty).
    pub fn names(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|d| format!("`{}`", d.name))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The `MLmodel` of a model folder, if it has one.
pub fn read_mlmodel(dir: &Path) -> Result<Option<ferry_mlmodel::MlModel>, String> {
    let path = dir.join("MLmodel");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{}`: {e}", path.display())),
    };
    ferry_mlmodel::parse(&text)
        .map(Some)
        .map_err(|e| format!("`{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(specs: &[&str]) -> Result<Runtimes, Vec<RuntimeError>> {
        Runtimes::parse(&specs.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_builtin_and_templates_become_argument_lists() {
        let r = parse(&[
            "mlflow",
            r#"custom=python3 "/opt/my server.py" --model={model_dir} --port {port}"#,
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(r.names(), "`mlflow`, `custom`");
        let c = r
            .get("custom")
            .unwrap_or_else(|| panic!("custom"))
            .command(Path::new("/srv/a/1/r/artifacts/m"), 4321);
        assert_eq!(c.program, "python3");
        assert_eq!(
            c.args,
            [
                "/opt/my server.py",
                "--model=/srv/a/1/r/artifacts/m",
                "--port",
                "4321"
            ]
        );
        let m = r
            .for_flavors(["python_function", "sklearn"])
            .unwrap_or_else(|| panic!("pyfunc runtime"));
        assert_eq!(m.name, "mlflow");
        let c = m.command(Path::new("/m"), 9);
        assert_eq!(
            c.to_string(),
            "mlflow models serve -m /m -h 127.0.0.1 -p 9 --env-manager local"
        );
        assert!(r.for_flavors(["onnx"]).is_none());
    }

    #[test]
    fn a_model_folder_with_shell_syntax_stays_one_argument() {
        let r = parse(&["x=server --dir {model_dir}"]).unwrap_or_else(|e| panic!("{e:?}"));
        let evil = Path::new("/srv/a/$(touch /tmp/pwned); `id` && rm -rf ~");
        let c = r.get("x").unwrap_or_else(|| panic!("x")).command(evil, 1);
        assert_eq!(
            c.args,
            ["--dir", "/srv/a/$(touch /tmp/pwned); `id` && rm -rf ~"]
        );
    }

    #[test]
    fn bad_definitions_are_all_reported() {
        let errs = parse(&[
            "",
            "Bad Name=x",
            "a=python3 'unclosed",
            "b={model_dir} serve",
            "c=serve {modeldir}",
            "d=",
            "pyfunc",
            "e=x",
            "e=y",
        ])
        .err()
        .unwrap_or_default();
        let msgs: Vec<String> = errs.iter().map(ToString::to_string).collect();
        insta::assert_snapshot!(msgs.join("\n"), @r"
        --runtime ``: expected `mlflow` or `NAME=PROGRAM ARGS...` (e.g. `pyfunc=mlflow models serve -m {model_dir} -p {port} --env-manager local`)
        --runtime `Bad Name`: a name has lower-case letters, digits, `-` and `_` only (at most 64)
        --runtime `a`: the template cannot be split into words (an unclosed quote?)
        --runtime `b`: the program must be fixed, not a placeholder
        --runtime `c`: unknown placeholder `{modeldir}` (known: {model_dir}, {port}, {host})
        --runtime `d=`: expected `mlflow` or `NAME=PROGRAM ARGS...` (e.g. `pyfunc=mlflow models serve -m {model_dir} -p {port} --env-manager local`)
        --runtime `pyfunc`: expected `mlflow` or `NAME=PROGRAM ARGS...` (e.g. `pyfunc=mlflow models serve -m {model_dir} -p {port} --env-manager local`)
        --runtime `e` is defined twice
        ");
    }

    #[test]
    fn flavours_come_from_mlmodel() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_mlmodel(d.path()), Ok(None));
        std::fs::write(
            d.path().join("MLmodel"),
            "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\nmlflow_version: 3.1.0\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let flavors = read_mlmodel(d.path()).ok().flatten().map(|m| m.flavors);
        assert_eq!(
            flavors,
            Some(vec!["python_function".to_owned(), "sklearn".to_owned()])
        );
        std::fs::write(d.path().join("MLmodel"), "flavors: [").unwrap_or_else(|e| panic!("{e}"));
        assert!(read_mlmodel(d.path()).is_err());
    }
}
