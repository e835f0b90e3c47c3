//! Reading configuration inputs: files, directories, and the YAML documents inside them,
//! down to each document's header (`apiVersion`, `kind`, `metadata`).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use yaml_serde::Value;

use crate::error::{ConfigError, DocumentRef, ErrorKind};
use crate::scan;

/// Largest configuration file vouch reads (Ratify resources are a few kilobytes).
pub(crate) const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Largest configuration vouch reads from a directory, all its YAML files together.
pub(crate) const MAX_TOTAL_BYTES: u64 = 4 * 1024 * 1024;

/// The API group of Ratify v1's configuration resources.
pub(crate) const GROUP: &str = "config.ratify.deislabs.io";

/// One configuration text and the name errors use for it.
#[derive(Debug)]
pub(crate) struct Source {
    pub(crate) name: String,
    pub(crate) text: String,
}

/// Reads `path`: a file, or every `*.yaml`/`*.yml` file of a directory (sorted by name,
/// not recursive, dot-files ignored, symlinks followed). Anything but regular files and
/// directories is refused before it is opened: reading a FIFO blocks until a writer comes.
pub(crate) fn read_path(path: &Path) -> Result<Vec<Source>, ConfigError> {
    let metadata = fs::metadata(path).map_err(|e| io_error(path, e))?;
    if !metadata.is_dir() {
        regular_file(path, &metadata)?;
        return Ok(vec![read_file(path, MAX_FILE_BYTES)?]);
    }
    let entries = fs::read_dir(path).map_err(|e| io_error(path, e))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error(path, e))?;
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            continue; // not UTF-8, so not one of ours
        };
        if file_name.starts_with('.') {
            continue; // ConfigMap mounts hold `..data` and `..<timestamp>` entries
        }
        let lower = file_name.to_ascii_lowercase();
        if !(lower.ends_with(".yaml") || lower.ends_with(".yml")) {
            continue;
        }
        let file_path = entry.path();
        // `fs::metadata` follows symlinks: ConfigMap keys are symlinks into `..data`.
        match fs::metadata(&file_path) {
            Ok(m) if m.is_dir() => {} // not recursive
            Ok(m) => {
                regular_file(&file_path, &m)?;
                files.push((file_name, file_path));
            }
            Err(e) => return Err(io_error(&file_path, e)),
        }
    }
    if files.is_empty() {
        return Err(ConfigError::new(
            path.display().to_string(),
            None,
            None,
            ErrorKind::NoYamlFiles {
                path: path.to_owned(),
            },
        ));
    }
    files.sort();
    let mut total: u64 = 0;
    let mut sources = Vec::with_capacity(files.len());
    for (_, file_path) in &files {
        // Each file may use what the ones before it left of the total.
        let budget = MAX_TOTAL_BYTES.saturating_sub(total).min(MAX_FILE_BYTES);
        let source = read_file(file_path, budget).map_err(|error| {
            let size = match error.kind() {
                ErrorKind::FileTooLarge { size, .. } if budget < MAX_FILE_BYTES => *size,
                _ => return error,
            };
            ConfigError::new(
                path.display().to_string(),
                None,
                None,
                ErrorKind::ConfigTooLarge {
                    path: path.to_owned(),
                    size: total + size,
                    limit: MAX_TOTAL_BYTES,
                },
            )
        })?;
        total += source.text.len() as u64;
        sources.push(source);
    }
    Ok(sources)
}

/// Refuses `path` (whose `metadata` follows symlinks) unless it is a regular file.
fn regular_file(path: &Path, metadata: &fs::Metadata) -> Result<(), ConfigError> {
    if metadata.is_file() {
        return Ok(());
    }
    Err(ConfigError::new(
        path.display().to_string(),
        None,
        None,
        ErrorKind::NotAFile {
            path: path.to_owned(),
            file_type: file_type_name(&metadata.file_type()),
        },
    ))
}

fn file_type_name(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "socket";
        }
        if file_type.is_char_device() {
            return "character device";
        }
        if file_type.is_block_device() {
            return "block device";
        }
    }
    if file_type.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

/// The size bound of [`Config::from_yaml`](crate::Config::from_yaml): a text is held to the
/// limit of a file.
pub(crate) fn check_size(source: &str, len: usize) -> Result<(), ConfigError> {
    let size = len as u64;
    if size > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            source,
            None,
            None,
            ErrorKind::FileTooLarge {
                size,
                limit: MAX_FILE_BYTES,
            },
        ));
    }
    Ok(())
}

/// Opens `path` for reading without blocking: a FIFO swapped in after the metadata check
/// would otherwise block `open` until a writer appears.
fn open_nonblocking(path: &Path) -> std::io::Result<fs::File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Reads the regular file `path`, at most `limit` bytes (more is [`ErrorKind::FileTooLarge`]).
fn read_file(path: &Path, limit: u64) -> Result<Source, ConfigError> {
    let name = path.display().to_string();
    let file = open_nonblocking(path).map_err(|e| io_error(path, e))?;
    // What was opened is checked again: the path may have changed since the metadata check.
    let metadata = file.metadata().map_err(|e| io_error(path, e))?;
    regular_file(path, &metadata)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(path, e))?;
    let size = bytes.len() as u64;
    if size > limit {
        return Err(ConfigError::new(
            name,
            None,
            None,
            ErrorKind::FileTooLarge {
                size: metadata.len().max(size),
                limit,
            },
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        io_error(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error()),
        )
    })?;
    Ok(Source { name, text })
}

fn io_error(path: &Path, source: std::io::Error) -> ConfigError {
    ConfigError::new(
        path.display().to_string(),
        None,
        None,
        ErrorKind::Io {
            path: path.to_owned(),
            source,
        },
    )
}

/// The version of a Ratify resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    V1beta1,
    V1alpha1,
}

impl ApiVersion {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1beta1 => "config.ratify.deislabs.io/v1beta1",
            ApiVersion::V1alpha1 => "config.ratify.deislabs.io/v1alpha1",
        }
    }
}

/// Where a document is: its input and [`DocumentRef`]. Builds located errors.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) source: String,
    pub(crate) doc: DocumentRef,
    /// Refuse fields vouch does not know (resources from the Kubernetes API, where an
    /// ignored field would go unnoticed) instead of ignoring them as Ratify does (files).
    pub(crate) strict: bool,
}

impl Ctx {
    /// An error at `field` of this document.
    pub(crate) fn err(&self, field: impl Into<String>, kind: ErrorKind) -> ConfigError {
        let field = field.into();
        let field = if field.is_empty() { None } else { Some(field) };
        ConfigError::new(self.source.clone(), Some(self.doc.clone()), field, kind)
    }

    /// "`<source>`: document #n (Kind "name")", for errors that point at another document.
    pub(crate) fn describe(&self) -> String {
        format!("{}: {}", self.source, self.doc)
    }

    /// Decodes `value` into `T`; errors carry the field path `prefix` + the path inside.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        value: Value,
        prefix: &str,
    ) -> Result<T, ConfigError> {
        let mut unknown: Vec<String> = Vec::new();
        let decoded = if self.strict {
            let mut note = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
            let deserializer = serde_ignored::Deserializer::new(value, &mut note);
            serde_path_to_error::deserialize::<_, T>(deserializer)
        } else {
            serde_path_to_error::deserialize::<_, T>(value)
        };
        if let (Ok(_), Some(first)) = (&decoded, unknown.first()) {
            return Err(self.err(
                join_path(prefix, first),
                ErrorKind::UnknownField {
                    field: first.rsplit('.').next().unwrap_or(first).to_owned(),
                },
            ));
        }
        decoded.map_err(|error| {
            let inner_path = error.path().to_string();
            let mut field = prefix.to_owned();
            if inner_path != "." && !inner_path.is_empty() {
                field = join_path(prefix, &inner_path);
            }
            let message = error.into_inner().to_string();
            match missing_field_name(&message) {
                Some(name) => self.err(
                    join_path(&field, name),
                    ErrorKind::MissingField { hint: "" },
                ),
                None => self.err(field, ErrorKind::InvalidField { message }),
            }
        })
    }
}

/// `prefix.rest`, or `prefix[0]` when `rest` starts with an index.
pub(crate) fn join_path(prefix: &str, rest: &str) -> String {
    if prefix.is_empty() {
        rest.to_owned()
    } else if rest.starts_with('[') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}.{rest}")
    }
}

/// `prefix.key`, or `prefix["key"]` when the key is not a plain identifier (artifact types,
/// names with dots).
pub(crate) fn key_path(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        join_path(prefix, key)
    } else {
        format!("{prefix}[{key:?}]")
    }
}

fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(&rest[..end])
}

/// One non-empty document with a readable header.
#[derive(Debug)]
pub(crate) struct Document {
    pub(crate) ctx: Ctx,
    pub(crate) api_version: ApiVersion,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) spec: Option<Value>,
}

/// Splits `text` into documents and reads their headers, in input order. Empty documents
/// are skipped; a syntax error ends the list. Text nesting deeper than
/// [`scan::MAX_NESTING`] is one error, found before the parser runs.
pub(crate) fn parse_documents(source: &str, text: &str) -> Vec<Result<Document, ConfigError>> {
    let mut documents = Vec::new();
    if let Some(deep) = scan::too_deep(text, scan::MAX_NESTING) {
        documents.push(Err(ConfigError::new(
            source,
            Some(DocumentRef {
                index: deep.document,
                kind: None,
                name: None,
            }),
            None,
            ErrorKind::TooDeep {
                limit: scan::MAX_NESTING,
                line: deep.line,
            },
        )));
        return documents;
    }
    let mut index = 0;
    for deserializer in yaml_serde::Deserializer::from_str(text) {
        index += 1;
        let value = match Value::deserialize(deserializer) {
            Ok(value) => value,
            Err(error) => {
                let location = error.location();
                let message = strip_location(&error.to_string());
                documents.push(Err(ConfigError::new(
                    source,
                    Some(DocumentRef {
                        index,
                        kind: None,
                        name: None,
                    }),
                    None,
                    ErrorKind::Yaml {
                        message,
                        line: location.as_ref().map(|l| l.line()),
                        column: location.as_ref().map(|l| l.column()),
                    },
                )));
                // After a syntax error the stream cannot be resynchronised (and the iterator
                // would repeat the error forever).
                break;
            }
        };
        match read_header(source, index, value) {
            Ok(Some(document)) => documents.push(Ok(document)),
            Ok(None) => {}
            Err(error) => documents.push(Err(error)),
        }
    }
    documents
}

/// yaml_serde may end its message with " at line L column C"; the location is reported
/// separately, so that suffix is dropped (a location inside the message is kept).
fn strip_location(message: &str) -> String {
    if let Some(pos) = message.rfind(" at line ") {
        let tail = &message[pos + " at line ".len()..];
        let is_suffix = tail.split_once(" column ").is_some_and(|(line, column)| {
            !line.is_empty()
                && !column.is_empty()
                && line.bytes().all(|b| b.is_ascii_digit())
                && column.bytes().all(|b| b.is_ascii_digit())
        });
        if is_suffix {
            return message[..pos].to_owned();
        }
    }
    message.to_owned()
}

pub(crate) fn read_header(
    source: &str,
    index: usize,
    value: Value,
) -> Result<Option<Document>, ConfigError> {
    let mut ctx = Ctx {
        strict: false,
        source: source.to_owned(),
        doc: DocumentRef {
            index,
            kind: None,
            name: None,
        },
    };
    let mut mapping = match value {
        Value::Null => return Ok(None),
        Value::Mapping(mapping) if mapping.is_empty() => return Ok(None),
        Value::Mapping(mapping) => mapping,
        _ => return Err(ctx.err("", ErrorKind::NotAMapping)),
    };
    // Read kind and name first, leniently, so that later errors can name the document.
    ctx.doc.kind = mapping
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let metadata = mapping.remove("metadata");
    ctx.doc.name = metadata
        .as_ref()
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);

    let api_version = match mapping.get("apiVersion") {
        None | Some(Value::Null) => {
            return Err(ctx.err(
                "apiVersion",
                ErrorKind::MissingField {
                    hint: "write apiVersion: config.ratify.deislabs.io/v1beta1",
                },
            ));
        }
        Some(Value::String(s)) => match s.split_once('/') {
            Some((GROUP, "v1beta1")) => ApiVersion::V1beta1,
            Some((GROUP, "v1alpha1")) => ApiVersion::V1alpha1,
            _ => {
                return Err(ctx.err(
                    "apiVersion",
                    ErrorKind::UnsupportedApiVersion { found: s.clone() },
                ));
            }
        },
        Some(_) => {
            return Err(ctx.err(
                "apiVersion",
                ErrorKind::InvalidField {
                    message: "expected a string".to_owned(),
                },
            ));
        }
    };
    let Some(kind) = ctx.doc.kind.clone() else {
        let kind = if mapping.contains_key("kind") {
            ErrorKind::InvalidField {
                message: "expected a string".to_owned(),
            }
        } else {
            ErrorKind::MissingField {
                hint: "e.g. Verifier, Store, Policy, CertificateStore, KeyManagementProvider",
            }
        };
        return Err(ctx.err("kind", kind));
    };
    let metadata = match metadata {
        Some(Value::Mapping(m)) => m,
        None | Some(Value::Null) => {
            return Err(ctx.err(
                "metadata.name",
                ErrorKind::MissingField {
                    hint: "every resource needs a name",
                },
            ));
        }
        Some(_) => {
            return Err(ctx.err(
                "metadata",
                ErrorKind::InvalidField {
                    message: "expected a mapping with name".to_owned(),
                },
            ));
        }
    };
    let name = match metadata.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => {
            return Err(ctx.err(
                "metadata.name",
                ErrorKind::EmptyValue {
                    hint: "every resource needs a name",
                },
            ));
        }
        None | Some(Value::Null) => {
            return Err(ctx.err(
                "metadata.name",
                ErrorKind::MissingField {
                    hint: "every resource needs a name",
                },
            ));
        }
        Some(_) => {
            return Err(ctx.err(
                "metadata.name",
                ErrorKind::InvalidField {
                    message: "expected a string".to_owned(),
                },
            ));
        }
    };
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ctx.err(
                "metadata.namespace",
                ErrorKind::InvalidField {
                    message: "expected a string".to_owned(),
                },
            ));
        }
    };
    let spec = match mapping.remove("spec") {
        None | Some(Value::Null) => None,
        Some(spec) => Some(spec),
    };
    Ok(Some(Document {
        ctx,
        api_version,
        kind,
        name,
        namespace,
        spec,
    }))
}
