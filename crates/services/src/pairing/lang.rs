//! `Accept-Language` parsing and the choice of a localized name.
//!
//! This module owns how a sender's language preferences become one name out of a
//! GeoIP record's localized names. It replaces the original channelserver's
//! algorithm on purpose (see the spec, §3): real RFC 9110 q-values instead of
//! string-sorted keys, first-listed wins among equal weights, and the database's
//! own language keys decide what exists (so `de`, `ja`, `es`, `pt-BR`, `zh-CN`
//! work), instead of a hard-coded list with wrong codes.
//!
//! Parsing is bounded and never fails: garbage entries are skipped. Matching per
//! preferred language range, in order (RFC 4647 flavoured):
//! 1. an exact, case-insensitive match against the names' keys (`pt-br` → `pt-BR`);
//! 2. a key that extends the range (`zh` → `zh-CN`, `pt` → `pt-BR`), as basic filtering does;
//! 3. the range truncated one subtag at a time, exact matches only (`en-US` → `en`,
//!    but `zh-TW` never becomes `zh-CN`);
//! 4. `*` stands for the configured default language.
//!
//! After all preferences, the default language and then `en` are tried.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// At most this many list elements of an `Accept-Language` value are considered.
pub const MAX_LANGUAGE_ENTRIES: usize = 16;

/// Longest language range accepted (a generous bound on BCP 47 tags seen in headers).
const MAX_RANGE_LEN: usize = 35;

/// The language tried after every preference and the default language.
const LAST_RESORT: &str = "en";

/// A configured default language is not a valid language tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid default language {0:?}: expected a language tag like \"en\" or \"pt-BR\"")]
pub struct LangError(pub String);

/// The language used when no preference matches (config `default_lang`, default `en`).
///
/// Validated on construction so a bad configuration fails at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultLanguage(String);

impl DefaultLanguage {
    /// Validates `tag` as a language tag (`*` is not allowed here).
    pub fn new(tag: &str) -> Result<Self, LangError> {
        match normalize_range(tag.trim()) {
            Some(range) if range != "*" => Ok(Self(range)),
            _ => Err(LangError(tag.to_owned())),
        }
    }

    /// The tag, lowercased.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DefaultLanguage {
    /// English, the channelserver default.
    fn default() -> Self {
        Self(LAST_RESORT.to_owned())
    }
}

impl FromStr for DefaultLanguage {
    type Err = LangError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for DefaultLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sender's language preferences, most preferred first, parsed once per connection.
///
/// Ranges are lowercased; entries with `q=0` are absent; duplicates keep their
/// best position. The default language is kept separately as the final fallback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguagePrefs {
    ranges: Vec<String>,
    default: DefaultLanguage,
}

impl LanguagePrefs {
    /// Parses an `Accept-Language` value (`None` when the header is absent).
    ///
    /// Whitespace around elements and parameters is ignored, `q` is matched
    /// case-insensitively, a missing `q` means 1, and equal weights keep header
    /// order. Elements that are not a language range or carry an invalid q-value
    /// are skipped; only the first [`MAX_LANGUAGE_ENTRIES`] non-empty elements count.
    pub fn parse(header: Option<&str>, default: &DefaultLanguage) -> Self {
        let mut weighted: Vec<(u16, String)> = header
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|element| !element.is_empty())
            .take(MAX_LANGUAGE_ENTRIES)
            .filter_map(parse_element)
            .filter(|(q, _)| *q > 0)
            .collect();
        // Stable: equal weights keep the order they had in the header.
        weighted.sort_by_key(|(q, _)| std::cmp::Reverse(*q));
        let mut ranges: Vec<String> = Vec::with_capacity(weighted.len());
        for (_, range) in weighted {
            if !ranges.contains(&range) {
                ranges.push(range);
            }
        }
        Self {
            ranges,
            default: default.clone(),
        }
    }

    /// Preferences without any `Accept-Language` header: only the default language.
    pub fn default_only(default: &DefaultLanguage) -> Self {
        Self::parse(None, default)
    }

    /// The accepted language ranges, most preferred first, lowercased (without the default).
    pub fn ranges(&self) -> impl Iterator<Item = &str> {
        self.ranges.iter().map(String::as_str)
    }

    /// The configured default language.
    pub fn default_language(&self) -> &DefaultLanguage {
        &self.default
    }
}

/// Parses one list element into (weight in thousandths, lowercased range).
fn parse_element(element: &str) -> Option<(u16, String)> {
    let mut parts = element.split(';');
    let range = normalize_range(parts.next()?.trim())?;
    let mut q = 1000;
    for param in parts {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
        // Accept-Language defines no other parameter; tolerate and ignore them.
    }
    Some((q, range))
}

/// RFC 9110 qvalue: `0[.ddd]` or `1[.000]`, as thousandths.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (value, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let place = [100, 10, 1][i];
        thousandths += u16::from(b - b'0') * place;
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Validates a language range (`*`, or alpha{1,8} then `-` alphanum{1,8} subtags)
/// and lowercases it. `_` is accepted as a separator, as some clients send `en_US`.
fn normalize_range(range: &str) -> Option<String> {
    if range == "*" {
        return Some("*".to_owned());
    }
    if range.is_empty() || range.len() > MAX_RANGE_LEN {
        return None;
    }
    let normalized = range.replace('_', "-").to_ascii_lowercase();
    let mut subtags = normalized.split('-');
    let primary = subtags.next()?;
    if primary.is_empty() || primary.len() > 8 || !primary.bytes().all(|b| b.is_ascii_alphabetic())
    {
        return None;
    }
    for subtag in subtags {
        if subtag.is_empty()
            || subtag.len() > 8
            || !subtag.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return None;
        }
    }
    Some(normalized)
}

/// A set of names keyed by language tag, as stored in a GeoIP record.
pub trait LocalizedNames {
    /// The (language tag, name) pairs, in the store's order.
    fn entries(&self) -> impl Iterator<Item = (&str, &str)>;
}

impl<K: AsRef<str>, V: AsRef<str>> LocalizedNames for BTreeMap<K, V> {
    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
}

impl LocalizedNames for maxminddb::geoip2::Names<'_> {
    fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("de", self.german),
            ("en", self.english),
            ("es", self.spanish),
            ("fr", self.french),
            ("ja", self.japanese),
            ("pt-BR", self.brazilian_portuguese),
            ("ru", self.russian),
            ("zh-CN", self.simplified_chinese),
        ]
        .into_iter()
        .filter_map(|(lang, name)| name.map(|n| (lang, n)))
    }
}

/// Picks the name best matching `prefs` (see the module docs for the order), or
/// `None` when neither a preference, the default language nor `en` is present.
pub fn pick<'n, N: LocalizedNames + ?Sized>(
    names: &'n N,
    prefs: &LanguagePrefs,
) -> Option<&'n str> {
    let default = prefs.default.as_str();
    prefs
        .ranges()
        .map(|range| if range == "*" { default } else { range })
        .chain([default, LAST_RESORT])
        .find_map(|range| pick_one(names, range))
}

/// Steps 1–3 of the module docs for one lowercase range.
fn pick_one<'n, N: LocalizedNames + ?Sized>(names: &'n N, range: &str) -> Option<&'n str> {
    if let Some(name) = exact(names, range) {
        return Some(name);
    }
    if let Some(name) = names.entries().find_map(|(key, name)| {
        let extends = key.len() > range.len()
            && key.as_bytes().get(range.len()) == Some(&b'-')
            && key
                .get(..range.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(range));
        extends.then_some(name)
    }) {
        return Some(name);
    }
    let mut truncated = range;
    while let Some((head, _)) = truncated.rsplit_once('-') {
        // RFC 4647 §3.4: a singleton (e.g. `x`) left at the end is dropped too.
        truncated = match head.rsplit_once('-') {
            Some((rest, last)) if last.len() == 1 => rest,
            _ => head,
        };
        if let Some(name) = exact(names, truncated) {
            return Some(name);
        }
    }
    None
}

fn exact<'n, N: LocalizedNames + ?Sized>(names: &'n N, range: &str) -> Option<&'n str> {
    names
        .entries()
        .find_map(|(key, name)| key.eq_ignore_ascii_case(range).then_some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefs(header: Option<&str>) -> LanguagePrefs {
        LanguagePrefs::parse(header, &DefaultLanguage::default())
    }

    fn ranges(header: &str) -> Vec<String> {
        prefs(Some(header)).ranges().map(str::to_owned).collect()
    }

    /// The names the test database holds for London.
    fn london() -> BTreeMap<&'static str, &'static str> {
        BTreeMap::from([
            ("de", "London"),
            ("en", "London"),
            ("es", "Londres"),
            ("fr", "Londres"),
            ("ja", "ロンドン"),
            ("pt-BR", "Londres"),
            ("ru", "Лондон"),
            ("zh-CN", "伦敦"),
        ])
    }

    /// Distinct names per language, to see which key was chosen.
    fn tagged() -> BTreeMap<String, String> {
        ["de", "en", "es", "fr", "ja", "pt-BR", "ru", "zh-CN"]
            .into_iter()
            .map(|k| (k.to_owned(), format!("name-{k}")))
            .collect()
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, &[&str])] = &[
            ("fr", &["fr"]),
            ("en-US,fr", &["en-us", "fr"]),
            ("de;q=0.5, ja", &["ja", "de"]),
            ("da, en-gb;q=0.8, en;q=0.7", &["da", "en-gb", "en"]),
            ("fr;q=0.5, de;q=0.5, ja;q=0.5", &["fr", "de", "ja"]),
            ("fr;q=0.3, de;q=0.9, ja", &["ja", "de", "fr"]),
            ("  FR-ca ;  Q = 0.9 ,\tEN\t", &["en", "fr-ca"]),
            ("fr;q=1.000, de;q=1", &["fr", "de"]),
            ("en_US", &["en-us"]),
            ("*", &["*"]),
            ("fr, *;q=0.1", &["fr", "*"]),
            // q=0 means "not acceptable".
            ("fr;q=0, de", &["de"]),
            ("fr;q=0.000, de;q=0.001", &["de"]),
            // Duplicates keep their best position.
            ("fr;q=0.2, de, FR", &["de", "fr"]),
            // Garbage is skipped, valid neighbours survive.
            (";;;,=,q=abc", &[]),
            ("fr;q=abc, de", &["de"]),
            ("fr;q=2, de;q=1.5, es;q=0.5555, it;q=-1, ja;q=.5", &[]),
            ("fr;q, de;;q=0.5", &[]),
            ("-, en", &["en"]),
            ("en-, -en, e1, en--us, toolongprimary", &[]),
            ("fr;level=1;q=0.4, de;q=0.5", &["de", "fr"]),
            ("", &[]),
            (",,, ,", &[]),
        ];
        for (header, expected) in cases {
            assert_eq!(ranges(header), *expected, "header {header:?}");
        }
    }

    #[test]
    fn parse_is_bounded() {
        let many: Vec<String> = (0..40)
            .map(|i| format!("x{}", char::from(b'a' + (i % 26) as u8)))
            .collect();
        let header = many.join(",");
        let got = ranges(&header);
        assert_eq!(got.len(), MAX_LANGUAGE_ENTRIES, "{got:?}");
        let header = format!("{}, fr", vec!["zz"; 20].join(","));
        assert_eq!(ranges(&header), ["zz"], "fr is past the bound");
        let long = format!("{};q=0.5, ja", "a".repeat(10_000));
        assert_eq!(ranges(&long), ["ja"]);
    }

    #[test]
    fn default_language_validation() {
        assert_eq!(
            DefaultLanguage::new("en").map(|d| d.to_string()),
            Ok("en".into())
        );
        assert_eq!(
            DefaultLanguage::new(" pt-BR ").map(|d| d.to_string()),
            Ok("pt-br".into())
        );
        assert_eq!(
            "fr".parse::<DefaultLanguage>().map(|d| d.to_string()),
            Ok("fr".into())
        );
        for bad in ["", "*", "e n", "en-", "12", "en;q=1"] {
            assert_eq!(
                DefaultLanguage::new(bad),
                Err(LangError(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(DefaultLanguage::default().as_str(), "en");
    }

    #[test]
    fn pick_spec_cases() {
        let names = london();
        let cases: &[(Option<&str>, &str)] = &[
            (None, "London"),
            (Some("fr"), "Londres"),
            // The original picked French here (string-sorted keys).
            (Some("en-US,fr"), "London"),
            (Some("de;q=0.5, ja"), "ロンドン"),
            (Some("ru-RU"), "Лондон"),
            (Some("zh-CN"), "伦敦"),
            (Some("fr;q=0, ru"), "Лондон"),
            (Some(";;;,=,q=abc"), "London"),
        ];
        for (header, expected) in cases {
            assert_eq!(
                pick(&names, &prefs(*header)),
                Some(*expected),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn pick_matching_table() {
        let names = tagged();
        let cases: &[(&str, &str)] = &[
            // Exact, case-insensitive, against the database's own keys.
            ("de", "de"),
            ("ja", "ja"),
            ("es", "es"),
            ("pt-BR", "pt-BR"),
            ("PT-br", "pt-BR"),
            ("zh-cn", "zh-CN"),
            // A key extending the range.
            ("pt", "pt-BR"),
            ("zh", "zh-CN"),
            // Truncation to an existing key.
            ("en-US", "en"),
            ("de-CH-1996", "de"),
            ("fr-x-foo", "fr"),
            ("es-419", "es"),
            // Never across regions/scripts: zh-TW falls through to the next range.
            ("zh-TW, ja;q=0.5", "ja"),
            ("pt-PT", "en"),
            // Unknown languages fall back to the default, then en.
            ("it, nl", "en"),
            ("it, fr;q=0.1", "fr"),
            ("*", "en"),
            ("it, *, de;q=0.1", "en"),
        ];
        for (header, expected) in cases {
            assert_eq!(
                pick(&names, &prefs(Some(header))),
                Some(format!("name-{expected}").as_str()),
                "header {header:?}"
            );
        }
    }

    #[test]
    fn pick_uses_configured_default_then_en() {
        let names = tagged();
        let fr = DefaultLanguage::new("fr").expect("valid");
        let p = LanguagePrefs::parse(Some("it"), &fr);
        assert_eq!(pick(&names, &p), Some("name-fr"));
        let p = LanguagePrefs::parse(Some("*"), &fr);
        assert_eq!(pick(&names, &p), Some("name-fr"));
        assert_eq!(
            pick(&names, &LanguagePrefs::default_only(&fr)),
            Some("name-fr")
        );

        // Default missing from the record: en.
        let only_en_ru = BTreeMap::from([("en", "Milton"), ("ru", "Милтон")]);
        let p = LanguagePrefs::parse(Some("it"), &fr);
        assert_eq!(pick(&only_en_ru, &p), Some("Milton"));

        // Nothing usable at all: None, never a panic.
        let only_ja = BTreeMap::from([("ja", "東京")]);
        assert_eq!(pick(&only_ja, &p), None);
        let empty: BTreeMap<String, String> = BTreeMap::new();
        assert_eq!(pick(&empty, &p), None);
    }

    #[test]
    fn pick_on_maxminddb_names() {
        let names = maxminddb::geoip2::Names {
            english: Some("Munich"),
            german: Some("München"),
            brazilian_portuguese: Some("Munique"),
            ..Default::default()
        };
        assert_eq!(pick(&names, &prefs(Some("de-AT"))), Some("München"));
        assert_eq!(pick(&names, &prefs(Some("pt"))), Some("Munique"));
        assert_eq!(pick(&names, &prefs(Some("ja"))), Some("Munich"));
    }
}
