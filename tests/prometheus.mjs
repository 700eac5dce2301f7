// A strict parser of the Prometheus text exposition format, version 0.0.4, for the tests of
// GET /metrics. It follows the format's description ("Text format details" of Prometheus'
// exposition formats) and refuses, rather than skips, whatever a scrape would reject or
// silently misread: a missing final line feed, an unknown escape in a label value, a TYPE after
// its samples or given twice, a family split in two groups, a repeated series, a bad name or
// value. tests/observability.test.mjs checks it against the format's own example first.

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);
// Go's strconv.ParseFloat as the format uses it: decimal or exponent notation, NaN, ±Inf.
const FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|Inf|inf|NaN|nan)$/;

class ParseError extends Error {
  constructor(lineNo, message) {
    super(`line ${lineNo}: ${message}`);
  }
}

function parseValue(text, lineNo) {
  if (!FLOAT.test(text)) throw new ParseError(lineNo, `not a float: ${JSON.stringify(text)}`);
  if (/^[+-]?inf$/i.test(text)) return text.startsWith("-") ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(text)) return NaN;
  return Number(text);
}

/** Unescapes HELP text: only \\ and \n are escapes; another backslash stays as it is. */
function unescapeHelp(s) {
  return s.replace(/\\(\\|n)/g, (_, c) => (c === "n" ? "\n" : "\\"));
}

/**
 * Reads `{a="x",b="y"}` starting at `line[i] === "{"`. Returns [labels, index after "}"].
 */
function parseLabels(line, i, lineNo) {
  const labels = {};
  i++; // "{"
  const skipBlanks = () => {
    while (line[i] === " " || line[i] === "\t") i++;
  };
  for (;;) {
    skipBlanks();
    if (line[i] === "}") return [labels, i + 1];
    const start = i;
    while (i < line.length && /[a-zA-Z0-9_]/.test(line[i])) i++;
    const name = line.slice(start, i);
    if (!LABEL_NAME.test(name)) throw new ParseError(lineNo, `bad label name ${JSON.stringify(name)}`);
    if (name.startsWith("__")) throw new ParseError(lineNo, `label names starting with __ are reserved: ${name}`);
    skipBlanks();
    if (line[i] !== "=") throw new ParseError(lineNo, `expected = after label ${name}`);
    i++;
    skipBlanks();
    if (line[i] !== '"') throw new ParseError(lineNo, `expected " to open the value of ${name}`);
    i++;
    let value = "";
    for (;;) {
      if (i >= line.length) throw new ParseError(lineNo, `unterminated value of label ${name}`);
      const c = line[i];
      if (c === '"') {
        i++;
        break;
      }
      if (c === "\\") {
        const e = line[i + 1];
        if (e === "\\") value += "\\";
        else if (e === '"') value += '"';
        else if (e === "n") value += "\n";
        else throw new ParseError(lineNo, `invalid escape \\${e ?? ""} in the value of label ${name}`);
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    if (name in labels) throw new ParseError(lineNo, `label ${name} given twice`);
    labels[name] = value;
    skipBlanks();
    if (line[i] === ",") {
      i++;
      continue;
    }
    if (line[i] === "}") return [labels, i + 1];
    throw new ParseError(lineNo, `expected , or } after the value of label ${name}`);
  }
}

/** The family a sample name belongs to, given the declared types. */
function familyOf(name, types) {
  for (const [suffix, kinds] of [
    ["_bucket", ["histogram"]],
    ["_sum", ["histogram", "summary"]],
    ["_count", ["histogram", "summary"]],
  ]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      if (kinds.includes(types.get(base))) return base;
    }
  }
  return name;
}

/**
 * Parses an exposition. Returns {families: Map(name -> {type, help, samples: [{name, labels, value, timestamp}]})}.
 * Throws on anything the format does not allow.
 */
export function parsePrometheusText(text) {
  if (typeof text !== "string") throw new TypeError("text expected");
  if (text.length > 0 && !text.endsWith("\n")) throw new ParseError(text.split("\n").length, "the last line must end with a line feed");
  const families = new Map();
  const types = new Map();
  const finished = new Set(); // families whose group of lines has ended
  const seriesSeen = new Set();
  let current = null;
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: "untyped", help: null, samples: [] });
    return families.get(name);
  };
  const enter = (name, lineNo) => {
    if (current === name) return;
    if (finished.has(name)) throw new ParseError(lineNo, `the lines of ${name} are not one group`);
    if (current !== null) finished.add(current);
    current = name;
  };
  const lines = text.split("\n");
  lines.pop(); // after the final line feed
  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    if (raw.includes("\r")) throw new ParseError(lineNo, "carriage return in a line (line feeds only)");
    const line = raw.replace(/^[ \t]+|[ \t]+$/g, "");
    if (line === "") return;
    if (line.startsWith("#")) {
      const m = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*))?$/.exec(line);
      if (!m) return; // an ordinary comment
      const [, kw, name, rest = ""] = m;
      if (!METRIC_NAME.test(name)) throw new ParseError(lineNo, `bad metric name ${JSON.stringify(name)}`);
      enter(name, lineNo);
      const f = family(name);
      if (kw === "HELP") {
        if (f.help !== null) throw new ParseError(lineNo, `a second HELP for ${name}`);
        f.help = unescapeHelp(rest);
      } else {
        if (!TYPES.has(rest)) throw new ParseError(lineNo, `unknown type ${JSON.stringify(rest)} for ${name}`);
        if (types.has(name)) throw new ParseError(lineNo, `a second TYPE for ${name}`);
        if (f.samples.length > 0) throw new ParseError(lineNo, `TYPE for ${name} after its samples`);
        types.set(name, rest);
        f.type = rest;
      }
      return;
    }
    let i = 0;
    while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i])) i++;
    const name = line.slice(0, i);
    if (!METRIC_NAME.test(name)) throw new ParseError(lineNo, `bad metric name in ${JSON.stringify(line)}`);
    let labels = {};
    let j = i;
    while (line[j] === " " || line[j] === "\t") j++;
    if (line[j] === "{") [labels, i] = parseLabels(line, j, lineNo);
    const rest = line.slice(i);
    if (rest !== "" && !/^[ \t]/.test(rest)) throw new ParseError(lineNo, `expected a blank before the value in ${JSON.stringify(line)}`);
    const tokens = rest.trim().split(/[ \t]+/).filter(Boolean);
    if (tokens.length < 1 || tokens.length > 2) throw new ParseError(lineNo, `expected a value and an optional timestamp in ${JSON.stringify(line)}`);
    const value = parseValue(tokens[0], lineNo);
    let timestamp = null;
    if (tokens.length === 2) {
      if (!/^-?\d+$/.test(tokens[1])) throw new ParseError(lineNo, `bad timestamp ${JSON.stringify(tokens[1])}`);
      timestamp = Number(tokens[1]);
    }
    const fam = familyOf(name, types);
    enter(fam, lineNo);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seriesSeen.has(key)) throw new ParseError(lineNo, `series ${name}${JSON.stringify(labels)} given twice`);
    seriesSeen.add(key);
    const type = types.get(fam) ?? "untyped";
    if (type === "counter" && !(value >= 0)) throw new ParseError(lineNo, `counter ${name} is ${value}`);
    if (type === "histogram" && name === `${fam}_bucket` && !("le" in labels)) throw new ParseError(lineNo, `bucket without le`);
    family(fam).samples.push({ name, labels, value, timestamp });
  });
  return { families };
}

/** The documented example of the format ("Text format example"), verbatim. */
export const FORMAT_EXAMPLE = `# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
`;
