//! Presentation: language, progress bars, summary tables. The only place that prints.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kiban_pipeline::Progress;

/// The language of user-facing text: Japanese first, English on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Ja,
    En,
}

impl Lang {
    /// `--lang`, else `KIBAN_LANG`, else Japanese.
    pub fn from_arg(arg: Option<&str>) -> Lang {
        let v = arg
            .map(str::to_string)
            .or_else(|| std::env::var("KIBAN_LANG").ok())
            .unwrap_or_default();
        if v.to_ascii_lowercase().starts_with("en") {
            Lang::En
        } else {
            Lang::Ja
        }
    }

    /// Picks the text in this language.
    pub fn t<'a>(self, ja: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Ja => ja,
            Lang::En => en,
        }
    }
}

/// Progress bars on standard error, hidden when it is not a terminal or output is JSON.
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    hidden: bool,
    lang: Lang,
}

impl Bars {
    pub fn new(hidden: bool, lang: Lang) -> Bars {
        Bars {
            bar: Mutex::new(None),
            hidden,
            lang,
        }
    }

    fn stage_name(&self, name: &str) -> String {
        let ja = match name {
            "scan" => "ファイル走査",
            "ingest" => "取り込み",
            "gate" => "オプトアウト確認",
            "release" => "提供データ作成",
            "synth" => "合成データ生成",
            "link" => "名寄せ",
            _ => name,
        };
        self.lang.t(ja, name).to_string()
    }
}

impl Progress for Bars {
    fn stage(&self, name: &str, total: Option<u64>) {
        if self.hidden {
            return;
        }
        let bar = match total {
            Some(n) => ProgressBar::new(n).with_style(
                ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} ({eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner(),
        };
        bar.set_draw_target(ProgressDrawTarget::stderr());
        bar.set_message(self.stage_name(name));
        if let Ok(mut b) = self.bar.lock() {
            if let Some(old) = b.take() {
                old.finish_and_clear();
            }
            *b = Some(bar);
        }
    }

    fn advance(&self, n: u64) {
        if let Ok(b) = self.bar.lock()
            && let Some(bar) = b.as_ref()
        {
            bar.inc(n);
        }
    }

    fn finish_stage(&self) {
        if let Ok(mut b) = self.bar.lock()
            && let Some(bar) = b.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// One row of a summary table: the label in the user's language, then the value.
pub fn row(lang: Lang, ja: &str, en: &str, value: impl Into<String>) -> (String, String) {
    (lang.t(ja, en).to_string(), value.into())
}

/// A two-column table with a title, aligned for terminals (East Asian wide characters count
/// as two columns).
pub fn table(title: &str, rows: &[(String, String)]) -> String {
    let w = rows.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = format!("{title}\n");
    for (k, v) in rows {
        let pad = w.saturating_sub(width(k));
        out.push_str(&format!("  {k}{}  {v}\n", " ".repeat(pad)));
    }
    out
}

/// Terminal columns of `s` (East Asian wide characters count as two).
fn width(s: &str) -> usize {
    s.chars()
        .map(|c| if (c as u32) >= 0x1100 { 2 } else { 1 })
        .sum()
}

/// A table with a header line and one line per row, columns aligned for terminals and
/// separated by two spaces (the last column unpadded). Rows shorter than the header are
/// padded with empty cells.
pub fn grid(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(widths.len()) {
            widths[i] = widths[i].max(width(c));
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).copied().unwrap_or("");
            if i + 1 == widths.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(w.saturating_sub(width(c)) + 2));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(&mut headers.iter().copied());
    for r in rows {
        out.push_str(&line(&mut r.iter().map(String::as_str)));
    }
    out
}
