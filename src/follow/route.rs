//! Which object answers a read: `REPLICA_LOCATIONS`, `X-Replica-Location` and the caller's
//! place (`request.cf`) to a location hint, or the primary.

use crate::error::{Error, Result};

/// Durable Object location hints, the values `REPLICA_LOCATIONS` and `X-Replica-Location` take.
pub const LOCATION_HINTS: &[&str] = &["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"];

/// Where a read goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadTarget {
    Primary,
    /// The read replica at this location hint (one of `REPLICA_LOCATIONS`).
    Replica(String),
}

/// `REPLICA_LOCATIONS` as a list of hints, in the order given, without repeats. Unset or
/// blank is no replicas. A name that is not a location hint is a deployment mistake, answered
/// 500 naming the variable, never guessed at.
pub fn parse_locations(var: Option<&str>) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in var.unwrap_or("").split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let hint = part.to_ascii_lowercase();
        if !LOCATION_HINTS.contains(&hint.as_str()) {
            return Err(Error::internal(format!(
                "the Worker variable REPLICA_LOCATIONS must list Durable Object location hints ({}), got {part:?}",
                LOCATION_HINTS.join(", ")
            )));
        }
        if !out.contains(&hint) {
            out.push(hint);
        }
    }
    Ok(out)
}

/// What the caller's request says about where it comes from (`request.cf`); all optional,
/// as locally and in tests none of it is set.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallerPlace {
    pub continent: Option<String>,
    pub country: Option<String>,
    pub longitude: Option<f32>,
}

/// The object that answers a read: the one `X-Replica-Location` names (400 for a name that is
/// not `primary` or one of `locations`), else the replica nearest the caller, else (no
/// replicas) the primary.
pub fn read_target(locations: &[String], header: Option<&str>, place: &CallerPlace) -> Result<ReadTarget> {
    if let Some(v) = header.map(str::trim) {
        if v.eq_ignore_ascii_case("primary") {
            return Ok(ReadTarget::Primary);
        }
        let hint = v.to_ascii_lowercase();
        if locations.contains(&hint) {
            return Ok(ReadTarget::Replica(hint));
        }
        if LOCATION_HINTS.contains(&hint.as_str()) {
            let listed = if locations.is_empty() { "none: REPLICA_LOCATIONS is unset".to_string() } else { locations.join(", ") };
            return Err(Error::bad_request(format!(
                "X-Replica-Location {v:?} names no read replica of this deployment (its replicas: {listed}); send one of them, \
                 primary, or leave the header out"
            )));
        }
        return Err(Error::bad_request(format!(
            "X-Replica-Location must be primary or a location hint ({}), got {v:?}",
            LOCATION_HINTS.join(", ")
        )));
    }
    Ok(match nearest(locations, place) {
        Some(l) => ReadTarget::Replica(l.to_string()),
        None => ReadTarget::Primary,
    })
}

/// The listed location nearest the caller: its own region's hint when listed, else the first
/// listed one in that region's order of nearness; the first listed without any place.
pub fn nearest<'a>(locations: &'a [String], place: &CallerPlace) -> Option<&'a str> {
    let first = locations.first()?;
    let Some(home) = home_hint(place) else {
        return Some(first);
    };
    let order = nearness(home);
    order.iter().find_map(|h| locations.iter().find(|l| l == h)).map(String::as_str).or(Some(first))
}

/// Countries Cloudflare reports under Asia or Africa that the `me` hint serves.
const MIDDLE_EAST: &[&str] = &["AE", "BH", "CY", "EG", "IL", "IQ", "IR", "JO", "KW", "LB", "OM", "PS", "QA", "SA", "SY", "TR", "YE"];
/// European countries the `eeur` hint serves.
const EASTERN_EUROPE: &[&str] =
    &["BG", "BY", "CZ", "EE", "FI", "GR", "HU", "LT", "LV", "MD", "PL", "RO", "RS", "RU", "SK", "UA", "BA", "ME", "MK", "AL", "XK"];

/// The hint of the caller's own region.
fn home_hint(place: &CallerPlace) -> Option<&'static str> {
    let country = place.country.as_deref().map(str::to_ascii_uppercase);
    let in_list = |list: &[&str]| country.as_deref().is_some_and(|c| list.contains(&c));
    Some(match place.continent.as_deref()?.to_ascii_uppercase().as_str() {
        "NA" => {
            // West of the Mississippi is wnam's.
            if place.longitude.is_some_and(|lon| lon < -95.0) {
                "wnam"
            } else {
                "enam"
            }
        }
        "SA" => "sam",
        "EU" if in_list(EASTERN_EUROPE) => "eeur",
        "EU" if in_list(MIDDLE_EAST) => "me",
        "EU" => "weur",
        "AS" if in_list(MIDDLE_EAST) => "me",
        "AS" => "apac",
        "AF" if in_list(MIDDLE_EAST) => "me",
        "AF" => "afr",
        "OC" | "AN" => "oc",
        _ => return None,
    })
}

/// Every hint, nearest first, from a region (rough great-circle order between the regions).
fn nearness(home: &str) -> &'static [&'static str] {
    match home {
        "wnam" => &["wnam", "enam", "sam", "apac", "oc", "weur", "eeur", "me", "afr"],
        "enam" => &["enam", "wnam", "sam", "weur", "eeur", "afr", "me", "apac", "oc"],
        "sam" => &["sam", "enam", "wnam", "afr", "weur", "eeur", "me", "oc", "apac"],
        "weur" => &["weur", "eeur", "me", "afr", "enam", "wnam", "sam", "apac", "oc"],
        "eeur" => &["eeur", "weur", "me", "afr", "apac", "enam", "wnam", "sam", "oc"],
        "me" => &["me", "eeur", "weur", "afr", "apac", "oc", "enam", "wnam", "sam"],
        "afr" => &["afr", "me", "weur", "eeur", "sam", "enam", "apac", "wnam", "oc"],
        "apac" => &["apac", "oc", "me", "eeur", "wnam", "weur", "afr", "enam", "sam"],
        _ => &["oc", "apac", "wnam", "me", "sam", "enam", "eeur", "weur", "afr"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locs(v: &str) -> Vec<String> {
        parse_locations(Some(v)).unwrap()
    }

    #[test]
    fn locations_parse_trimmed_lowercased_and_once() {
        assert_eq!(locs(" weur, APAC ,weur,,"), vec!["weur", "apac"]);
        assert!(parse_locations(None).unwrap().is_empty());
        assert!(parse_locations(Some("  ")).unwrap().is_empty());
        let e = parse_locations(Some("weur,mars")).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(e.message().contains("REPLICA_LOCATIONS") && e.message().contains("mars"), "{}", e.message());
    }

    #[test]
    fn the_header_picks_a_listed_replica_or_the_primary_and_refuses_the_rest() {
        let l = locs("weur,apac,enam");
        let none = CallerPlace::default();
        assert_eq!(read_target(&l, Some("apac"), &none).unwrap(), ReadTarget::Replica("apac".into()));
        assert_eq!(read_target(&l, Some(" WEUR "), &none).unwrap(), ReadTarget::Replica("weur".into()));
        assert_eq!(read_target(&l, Some("primary"), &none).unwrap(), ReadTarget::Primary);
        assert_eq!(read_target(&l, Some("Primary"), &none).unwrap(), ReadTarget::Primary);
        let e = read_target(&l, Some("oc"), &none).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("\"oc\"") && e.message().contains("weur, apac, enam"), "{}", e.message());
        let e = read_target(&l, Some("narnia"), &none).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.message().contains("location hint"), "{}", e.message());
        // Without replicas: only `primary`, as before.
        assert_eq!(read_target(&[], Some("primary"), &none).unwrap(), ReadTarget::Primary);
        assert_eq!(read_target(&[], None, &none).unwrap(), ReadTarget::Primary);
        assert!(read_target(&[], Some("weur"), &none).unwrap_err().message().contains("REPLICA_LOCATIONS is unset"));
    }

    #[test]
    fn without_a_header_the_nearest_listed_replica_answers() {
        let l = locs("wnam,weur,apac");
        let at = |continent: &str, country: &str, lon: f32| CallerPlace {
            continent: Some(continent.into()),
            country: Some(country.into()),
            longitude: Some(lon),
        };
        let go = |p: CallerPlace| read_target(&l, None, &p).unwrap();
        assert_eq!(go(at("EU", "DE", 13.4)), ReadTarget::Replica("weur".into()));
        assert_eq!(go(at("EU", "PL", 21.0)), ReadTarget::Replica("weur".into()), "eeur is not listed; weur is next");
        assert_eq!(go(at("NA", "US", -122.4)), ReadTarget::Replica("wnam".into()));
        assert_eq!(go(at("NA", "US", -74.0)), ReadTarget::Replica("wnam".into()), "enam is not listed; wnam is next");
        assert_eq!(go(at("AS", "JP", 139.7)), ReadTarget::Replica("apac".into()));
        assert_eq!(go(at("OC", "AU", 151.2)), ReadTarget::Replica("apac".into()));
        assert_eq!(go(at("SA", "BR", -46.6)), ReadTarget::Replica("wnam".into()));
        assert_eq!(go(at("AF", "KE", 36.8)), ReadTarget::Replica("weur".into()));
        assert_eq!(go(at("AS", "AE", 55.3)), ReadTarget::Replica("weur".into()), "me is not listed; eeur neither; weur");
        // No place (local workerd): the first listed.
        assert_eq!(go(CallerPlace::default()), ReadTarget::Replica("wnam".into()));
        assert_eq!(go(at("XX", "", 0.0)), ReadTarget::Replica("wnam".into()));
    }

    #[test]
    fn every_region_orders_every_hint_once() {
        for home in LOCATION_HINTS {
            let order = nearness(home);
            assert_eq!(order[0], *home);
            let mut sorted: Vec<&str> = order.to_vec();
            sorted.sort();
            let mut all: Vec<&str> = LOCATION_HINTS.to_vec();
            all.sort();
            assert_eq!(sorted, all, "{home}");
        }
    }
}
