//! The driver's command line: runtime flavours, transports, options.

use super::*;

/// A tokio runtime flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Current,
    Multi,
}

impl Flavour {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "current" | "current_thread" => Ok(Self::Current),
            "multi" | "multi_thread" => Ok(Self::Multi),
            other => Err(format!("unknown flavour `{other}`; expected `current` or `multi`")),
        }
    }

    pub(crate) fn arg(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Multi => "multi",
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::Current => "current_thread",
            Self::Multi => "multi_thread(2)",
        }
    }

    pub(crate) fn runtime(self) -> tokio::runtime::Runtime {
        let mut builder = match self {
            Self::Current => tokio::runtime::Builder::new_current_thread(),
            Self::Multi => {
                let mut b = tokio::runtime::Builder::new_multi_thread();
                b.worker_threads(2);
                b
            }
        };
        builder.enable_all().build().expect("tokio runtime")
    }
}

/// How the driver reaches the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Two routers joined through an `edri::switch::Server`.
    Switch,
    /// Two routers joined through NATS JetStream (`EdriBuilder::nats`).
    Nats,
    /// async-nats directly, no router: the NATS transport's twin.
    Raw,
    /// Length-prefixed frames through a relay process, no router: the switch's twin.
    Relay,
}

impl Transport {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "switch" => Ok(Self::Switch),
            "nats" => Ok(Self::Nats),
            "raw" => Ok(Self::Raw),
            "relay" => Ok(Self::Relay),
            other => {
                Err(format!("unknown transport `{other}`; expected switch, nats, raw or relay"))
            }
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Switch => "switch",
            Self::Nats => "nats",
            Self::Raw => "raw",
            Self::Relay => "relay",
        }
    }
}

/// The driver's command line.
#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) flavour: Flavour,
    pub(crate) switch_flavour: Flavour,
    pub(crate) count: u64,
    pub(crate) tunnel_mib: u64,
    pub(crate) only: Option<String>,
    pub(crate) transports: Vec<Transport>,
}

pub(crate) const USAGE: &str = "usage: cross-router [--flavour current|multi] [--switch-flavour multi|current] \
                     [--count N] [--tunnel-mib N] [--only notify|request|tunnel] \
                     [--transport switch|nats|raw|relay[,...]]";

pub(crate) fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut options = Options {
        flavour: Flavour::Current,
        switch_flavour: Flavour::Current,
        count: DEFAULT_COUNT,
        tunnel_mib: 512,
        only: None,
        transports: Vec::new(),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let mut value =
            || inline.clone().or_else(|| args.next()).ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--flavour" => options.flavour = Flavour::parse(&value()?)?,
            "--switch-flavour" => options.switch_flavour = Flavour::parse(&value()?)?,
            "--count" => {
                let text = value()?.replace('_', "");
                options.count = text.parse().map_err(|e| format!("--count {text}: {e}"))?;
            }
            "--tunnel-mib" => {
                let text = value()?;
                options.tunnel_mib =
                    text.parse().map_err(|e| format!("--tunnel-mib {text}: {e}"))?;
            }
            "--only" => match value()?.as_str() {
                group @ ("notify" | "request" | "tunnel") => options.only = Some(group.into()),
                other => return Err(format!("--only {other}: expected notify, request or tunnel")),
            },
            "--transport" => {
                for name in value()?.split(',') {
                    options.transports.push(Transport::parse(name)?);
                }
            }
            // `cargo bench` style arguments are ignored.
            "--bench" => {}
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    if options.transports.is_empty() {
        options.transports.push(Transport::Switch);
    }
    Ok(options)
}
