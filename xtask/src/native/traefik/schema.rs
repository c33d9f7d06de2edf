//! traefik's label options (v3.6): for each protocol, the routers', services'
//! and middlewares' options and how each is read.

/// How traefik reads an option.
#[derive(Clone, Copy)]
pub(super) enum OptionType {
    /// A string (durations included).
    Str,
    Bool,
    Int,
    /// A list of strings: comma-separated in a label.
    List,
    /// A map of strings: the rest of the key is the map's key.
    Map,
    /// Anything, kept as written (plugin configuration).
    Any,
    /// A block `=true` enables with its defaults (traefik's "allowEmpty").
    AllowEmpty(Fields),
    /// A block.
    Block(Fields),
    /// A list of blocks, `name[0].option`.
    BlockList(Fields),
}
use OptionType::*;

/// A block's options: (name as traefik spells it, how it is read).
pub(super) type Fields = &'static [(&'static str, OptionType)];

const DOMAIN: Fields = &[("main", Str), ("sans", List)];
const ROUTER: Fields = &[
    ("entryPoints", List),
    ("middlewares", List),
    ("service", Str),
    ("rule", Str),
    ("ruleSyntax", Str),
    ("priority", Int),
    (
        "tls",
        AllowEmpty(&[("options", Str), ("certResolver", Str), ("domains", BlockList(DOMAIN))]),
    ),
    (
        "observability",
        Block(&[
            ("accessLogs", Bool),
            ("metrics", Bool),
            ("tracing", Bool),
            ("traceVerbosity", Str),
        ]),
    ),
];
const SERVICE: Fields = &[(
    "loadBalancer",
    Block(&[
        (
            "server",
            Block(&[
                ("port", Str),
                ("scheme", Str),
                ("url", Str),
                ("weight", Int),
                ("preservePath", Bool),
            ]),
        ),
        (
            "sticky",
            AllowEmpty(&[(
                "cookie",
                AllowEmpty(&[
                    ("name", Str),
                    ("secure", Bool),
                    ("httpOnly", Bool),
                    ("sameSite", Str),
                    ("maxAge", Int),
                    ("path", Str),
                    ("domain", Str),
                ]),
            )]),
        ),
        ("strategy", Str),
        (
            "healthCheck",
            Block(&[
                ("scheme", Str),
                ("mode", Str),
                ("path", Str),
                ("method", Str),
                ("status", Int),
                ("port", Int),
                ("interval", Str),
                ("unhealthyInterval", Str),
                ("timeout", Str),
                ("hostname", Str),
                ("followRedirects", Bool),
                ("headers", Map),
            ]),
        ),
        (
            "passiveHealthCheck",
            Block(&[("failureWindow", Str), ("maxFailedAttempts", Int)]),
        ),
        ("passHostHeader", Bool),
        ("responseForwarding", Block(&[("flushInterval", Str)])),
        ("serversTransport", Str),
    ]),
)];
const IP_STRATEGY: Fields = &[("depth", Int), ("excludedIPs", List)];
const SOURCE_CRITERION: Fields = &[
    ("ipStrategy", Block(IP_STRATEGY)),
    ("requestHeaderName", Str),
    ("requestHost", Bool),
];
const CLIENT_TLS: Fields = &[
    ("ca", Str),
    ("cert", Str),
    ("key", Str),
    ("insecureSkipVerify", Bool),
    ("caOptional", Bool),
];
const AUTH: Fields = &[
    ("users", List),
    ("usersFile", Str),
    ("realm", Str),
    ("removeHeader", Bool),
    ("headerField", Str),
];
const DN: Fields = &[
    ("country", Bool),
    ("province", Bool),
    ("locality", Bool),
    ("organization", Bool),
    ("organizationalUnit", Bool),
    ("commonName", Bool),
    ("serialNumber", Bool),
    ("domainComponent", Bool),
];
const MIDDLEWARE: Fields = &[
    ("addPrefix", Block(&[("prefix", Str)])),
    ("stripPrefix", Block(&[("prefixes", List), ("forceSlash", Bool)])),
    ("stripPrefixRegex", Block(&[("regex", List)])),
    ("replacePath", Block(&[("path", Str)])),
    ("replacePathRegex", Block(&[("regex", Str), ("replacement", Str)])),
    ("chain", Block(&[("middlewares", List)])),
    (
        "ipWhiteList",
        Block(&[("sourceRange", List), ("ipStrategy", AllowEmpty(IP_STRATEGY))]),
    ),
    (
        "ipAllowList",
        Block(&[
            ("sourceRange", List),
            ("ipStrategy", AllowEmpty(IP_STRATEGY)),
            ("rejectStatusCode", Int),
        ]),
    ),
    (
        "headers",
        Block(&[
            ("customRequestHeaders", Map),
            ("customResponseHeaders", Map),
            ("accessControlAllowCredentials", Bool),
            ("accessControlAllowHeaders", List),
            ("accessControlAllowMethods", List),
            ("accessControlAllowOriginList", List),
            ("accessControlAllowOriginListRegex", List),
            ("accessControlExposeHeaders", List),
            ("accessControlMaxAge", Int),
            ("addVaryHeader", Bool),
            ("allowedHosts", List),
            ("hostsProxyHeaders", List),
            ("sslProxyHeaders", Map),
            ("stsSeconds", Int),
            ("stsIncludeSubdomains", Bool),
            ("stsPreload", Bool),
            ("forceSTSHeader", Bool),
            ("frameDeny", Bool),
            ("customFrameOptionsValue", Str),
            ("contentTypeNosniff", Bool),
            ("browserXssFilter", Bool),
            ("customBrowserXSSValue", Str),
            ("contentSecurityPolicy", Str),
            ("contentSecurityPolicyReportOnly", Str),
            ("publicKey", Str),
            ("referrerPolicy", Str),
            ("permissionsPolicy", Str),
            ("isDevelopment", Bool),
            ("featurePolicy", Str),
            ("sslRedirect", Bool),
            ("sslTemporaryRedirect", Bool),
            ("sslHost", Str),
            ("sslForceHost", Bool),
        ]),
    ),
    (
        "errors",
        Block(&[
            ("status", List),
            ("statusRewrites", Map),
            ("service", Str),
            ("query", Str),
        ]),
    ),
    (
        "rateLimit",
        Block(&[
            ("average", Int),
            ("period", Str),
            ("burst", Int),
            ("sourceCriterion", Block(SOURCE_CRITERION)),
            (
                "redis",
                Block(&[
                    ("endpoints", List),
                    (
                        "tls",
                        Block(&[("ca", Str), ("cert", Str), ("key", Str), ("insecureSkipVerify", Bool)]),
                    ),
                    ("username", Str),
                    ("password", Str),
                    ("db", Int),
                    ("poolSize", Int),
                    ("minIdleConns", Int),
                    ("maxActiveConns", Int),
                    ("readTimeout", Str),
                    ("writeTimeout", Str),
                    ("dialTimeout", Str),
                ]),
            ),
        ]),
    ),
    (
        "redirectRegex",
        Block(&[("regex", Str), ("replacement", Str), ("permanent", Bool)]),
    ),
    (
        "redirectScheme",
        Block(&[("scheme", Str), ("port", Str), ("permanent", Bool)]),
    ),
    ("basicAuth", Block(AUTH)),
    ("digestAuth", Block(AUTH)),
    (
        "forwardAuth",
        Block(&[
            ("address", Str),
            ("tls", Block(CLIENT_TLS)),
            ("trustForwardHeader", Bool),
            ("authResponseHeaders", List),
            ("authResponseHeadersRegex", Str),
            ("authRequestHeaders", List),
            ("maxResponseBodySize", Int),
            ("addAuthCookiesToResponse", List),
            ("headerField", Str),
            ("forwardBody", Bool),
            ("maxBodySize", Int),
            ("preserveLocationHeader", Bool),
            ("preserveRequestMethod", Bool),
        ]),
    ),
    (
        "inFlightReq",
        Block(&[("amount", Int), ("sourceCriterion", Block(SOURCE_CRITERION))]),
    ),
    (
        "buffering",
        Block(&[
            ("maxRequestBodyBytes", Int),
            ("memRequestBodyBytes", Int),
            ("maxResponseBodyBytes", Int),
            ("memResponseBodyBytes", Int),
            ("retryExpression", Str),
        ]),
    ),
    (
        "circuitBreaker",
        Block(&[
            ("expression", Str),
            ("checkPeriod", Str),
            ("fallbackDuration", Str),
            ("recoveryDuration", Str),
            ("responseCode", Int),
        ]),
    ),
    (
        "compress",
        AllowEmpty(&[
            ("excludedContentTypes", List),
            ("includedContentTypes", List),
            ("minResponseBodyBytes", Int),
            ("encodings", List),
            ("defaultEncoding", Str),
        ]),
    ),
    (
        "passTLSClientCert",
        Block(&[
            ("pem", Bool),
            (
                "info",
                Block(&[
                    ("notAfter", Bool),
                    ("notBefore", Bool),
                    ("sans", Bool),
                    ("serialNumber", Bool),
                    ("subject", Block(DN)),
                    ("issuer", Block(DN)),
                ]),
            ),
        ]),
    ),
    ("retry", Block(&[("attempts", Int), ("initialInterval", Str)])),
    ("contentType", AllowEmpty(&[("autoDetect", Bool)])),
    ("grpcWeb", Block(&[("allowOrigins", List)])),
    ("plugin", Any),
];
const TCP_ROUTER: Fields = &[
    ("entryPoints", List),
    ("middlewares", List),
    ("service", Str),
    ("rule", Str),
    ("ruleSyntax", Str),
    ("priority", Int),
    (
        "tls",
        AllowEmpty(&[
            ("passthrough", Bool),
            ("options", Str),
            ("certResolver", Str),
            ("domains", BlockList(DOMAIN)),
        ]),
    ),
];
const TCP_SERVICE: Fields = &[(
    "loadBalancer",
    Block(&[
        ("server", Block(&[("port", Str), ("tls", Bool)])),
        ("serversTransport", Str),
        ("proxyProtocol", AllowEmpty(&[("version", Int)])),
        ("terminationDelay", Int),
        (
            "healthCheck",
            AllowEmpty(&[
                ("port", Int),
                ("send", Str),
                ("expect", Str),
                ("interval", Str),
                ("unhealthyInterval", Str),
                ("timeout", Str),
            ]),
        ),
    ]),
)];
const TCP_MIDDLEWARE: Fields = &[
    ("inFlightConn", Block(&[("amount", Int)])),
    ("ipWhiteList", Block(&[("sourceRange", List)])),
    ("ipAllowList", Block(&[("sourceRange", List)])),
];
const UDP_ROUTER: Fields = &[("entryPoints", List), ("service", Str)];
const UDP_SERVICE: Fields = &[("loadBalancer", Block(&[("server", Block(&[("port", Str)]))]))];

/// The three protocols and what each may define.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Protocol {
    Http,
    Tcp,
    Udp,
}

impl Protocol {
    pub(super) const ALL: [Protocol; 3] = [Protocol::Http, Protocol::Tcp, Protocol::Udp];

    pub(super) fn key(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// (kind, its fields) in the order traefik merges them.
    pub(super) fn kinds(self) -> &'static [(Kind, Fields)] {
        match self {
            Protocol::Http => &[
                (Kind::Routers, ROUTER),
                (Kind::Services, SERVICE),
                (Kind::Middlewares, MIDDLEWARE),
            ],
            Protocol::Tcp => &[
                (Kind::Routers, TCP_ROUTER),
                (Kind::Services, TCP_SERVICE),
                (Kind::Middlewares, TCP_MIDDLEWARE),
            ],
            Protocol::Udp => &[(Kind::Routers, UDP_ROUTER), (Kind::Services, UDP_SERVICE)],
        }
    }
}

/// What a protocol's section defines.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(super) enum Kind {
    Routers,
    Services,
    Middlewares,
}

impl Kind {
    pub(super) fn key(self) -> &'static str {
        match self {
            Kind::Routers => "routers",
            Kind::Services => "services",
            Kind::Middlewares => "middlewares",
        }
    }

    /// The singular, for messages.
    pub(super) fn one(self) -> &'static str {
        match self {
            Kind::Routers => "router",
            Kind::Services => "service",
            Kind::Middlewares => "middleware",
        }
    }
}
