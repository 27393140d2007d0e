//! The HTML report: one self-contained file an admin can open and forward (no script from
//! elsewhere, no font, no network: styles inline, pictures as data URIs).
//!
//! It shows the verdict matrix (a row per scenario and session host, a column per check),
//! then for each check its expectation with the layer that decided it and the decision
//! trail, what was observed, the verdict's cause, what the host itself has, and a
//! spectrogram of each evidence recording with the frequencies the check listens for marked
//! (the signature's alphabet, the continuity tone, the quality signal's tones).
//!
//! Spectrograms: the first 20 s of the recording, channels mixed, a Hann-windowed FFT of
//! 46 ms every 1/240 of the length, 0-4 kHz (signature and continuity checks) or 0-20 kHz
//! (quality), -100 to -20 dBFS, drawn as an uncompressed bitmap inside an SVG with the
//! marks on top. A recording that cannot be read is said in its place.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use earshot_probe::signal::{continuity, quality, Direction};

use super::{write_atomically, Event, ReportError, Reporter, Run};
use crate::scenario::Check;

/// Writes the HTML report after every event (pictures of evidence rendered once each).
pub struct HtmlReporter {
    path: PathBuf,
    pictures: HashMap<PathBuf, String>,
}

impl HtmlReporter {
    /// A reporter writing to `path`.
    pub fn new(path: PathBuf) -> HtmlReporter {
        HtmlReporter {
            path,
            pictures: HashMap::new(),
        }
    }
}

impl Reporter for HtmlReporter {
    fn event(&mut self, _event: &Event, run: &Run) -> Result<(), ReportError> {
        let text = render(run, &mut self.pictures);
        write_atomically(&self.path, text.as_bytes())
    }
}

/// Escapes text for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub(crate) const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;padding:16px;color:#1b1b1b;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:18px 0 6px}
.meta{color:#555}
table{border-collapse:collapse;width:100%;table-layout:fixed}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#f3f3f3}
.v{font-weight:600;text-align:center}
.pass{background:#c8ecc9;color:#0b4d0e}.fail{background:#f7c4c0;color:#7a0d06}
.inconclusive{background:#fbe6a6;color:#5c4300}.none{color:#999;text-align:center}
.check{border:1px solid #ddd;border-radius:6px;padding:8px 12px;margin:10px 0}
.check p{margin:4px 0;overflow-wrap:anywhere}
.label{display:inline-block;min-width:92px;color:#555}
ul.trail{margin:2px 0 2px 20px;padding:0}
figure{margin:8px 0}figcaption{color:#555;font-size:12px}
svg.spec{width:100%;height:auto;max-width:960px;display:block;border:1px solid #999}
.warn{color:#7a0d06}
";

/// Renders the whole report.
pub fn render(run: &Run, pictures: &mut HashMap<PathBuf, String>) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>earshot report</title><style>{STYLE}</style></head><body>"
    );
    let t = run.tally();
    let mut not_run = if t.did_not_run > 0 {
        format!(" ({} did not run)", t.did_not_run)
    } else {
        String::new()
    };
    if let Some(i) = &run.interrupted {
        let _ = write!(
            not_run,
            "; INTERRUPTED by {} at {}, {} scenario(s) not started",
            i.signal,
            crate::host::when(i.at_unix_ms),
            i.not_started
        );
    }
    let _ = writeln!(
        h,
        "<h1>earshot: audio redirection report</h1>\n<p class=\"meta\">earshot {}, run started \
         {}; {} scenario(s): <b>{}</b> pass, <b>{}</b> fail, <b>{}</b> inconclusive{}</p>",
        esc(&run.earshot_version),
        esc(&crate::host::when(run.started_unix_ms)),
        t.scenarios,
        t.pass,
        t.fail,
        t.inconclusive_total(),
        esc(&not_run),
    );
    // The matrix.
    let columns: Vec<Check> = [
        Check::Output,
        Check::Capture,
        Check::Continuity,
        Check::Quality,
    ]
    .into_iter()
    .filter(|c| {
        run.scenarios
            .iter()
            .any(|s| s.checks.iter().any(|k| k.check == *c))
    })
    .collect();
    h.push_str("<h2>Verdicts</h2>\n<table class=\"matrix\"><thead><tr><th>scenario</th><th>session host</th>");
    for c in &columns {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr></thead><tbody>\n");
    for (i, s) in run.scenarios.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td><a href=\"#s{i}\">{}</a></td><td>{}</td>",
            esc(&s.name),
            esc(&host_of(s))
        );
        for c in &columns {
            match s.checks.iter().position(|k| k.check == *c) {
                Some(j) => {
                    let v = s.checks[j].verdict.to_string();
                    let _ = write!(h, "<td class=\"v {v}\"><a href=\"#s{i}c{j}\">{v}</a></td>");
                }
                None if s.error.is_some() && s.checks.is_empty() => {
                    h.push_str("<td class=\"v inconclusive\">did not run</td>")
                }
                None => h.push_str("<td class=\"none\">-</td>"),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody></table>\n");
    // Each scenario.
    for (i, s) in run.scenarios.iter().enumerate() {
        let _ = writeln!(
            h,
            "<section class=\"scenario\" id=\"s{i}\"><h2>{}</h2><p class=\"meta\">{} · {} · \
             session host {}</p>",
            esc(&s.name),
            esc(&s.file.display().to_string()),
            s.product
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            esc(&host_of(s))
        );
        if let Some(e) = &s.error {
            let _ = writeln!(h, "<p class=\"warn\"><b>Did not run:</b> {}</p>", esc(e));
        }
        for w in &s.warnings {
            let _ = writeln!(h, "<p class=\"warn\">Warning: {}</p>", esc(w));
        }
        for p in &s.probes {
            let _ = writeln!(
                h,
                "<p class=\"meta\">{} probe: earshot-probe {} on {} ({}), {}; {}</p>",
                esc(&p.role),
                esc(&p.version),
                esc(&p.host_name),
                esc(&p.os),
                esc(&p.peer),
                esc(&p.remote_session)
            );
            for line in &p.host_settings {
                let _ = writeln!(h, "<p class=\"meta\">&nbsp;&nbsp;{}</p>", esc(line));
            }
        }
        for (j, c) in s.checks.iter().enumerate() {
            let v = c.verdict.to_string();
            let _ = writeln!(
                h,
                "<div class=\"check\" id=\"s{i}c{j}\"><h3>{} <span class=\"v {v}\">&nbsp;{v}&nbsp;</span></h3>",
                c.check
            );
            let _ = writeln!(
                h,
                "<p><span class=\"label\">expected</span>{} (decided by {})</p>",
                esc(&c.expected),
                esc(&c.decided_by)
            );
            if let Some(e) = &s.expectation {
                let path = c.path.unwrap_or(c.check.default_path());
                let trail = crate::check::Planned::new(c.check, path, e).trail();
                if !trail.is_empty() {
                    h.push_str("<ul class=\"trail\">");
                    for t in trail {
                        let _ = write!(h, "<li>{}</li>", esc(t));
                    }
                    h.push_str("</ul>\n");
                }
            }
            let _ = writeln!(
                h,
                "<p><span class=\"label\">observed</span>{} ({})</p>",
                esc(&c.observation.describe()),
                esc(c.observation.kind())
            );
            if let Some(r) = &c.rig_proof {
                let _ = writeln!(
                    h,
                    "<p><span class=\"label\">client rig</span>{}</p>",
                    esc(r)
                );
            }
            let _ = writeln!(
                h,
                "<p><span class=\"label\">why</span>{}</p>",
                esc(&c.cause)
            );
            if let Some(host) = &c.host {
                let _ = writeln!(
                    h,
                    "<p><span class=\"label\">on the host</span>{}</p>",
                    esc(&host.cause)
                );
            }
            let _ = writeln!(
                h,
                "<p class=\"meta\">seed {}, started {}, {:.0} ms</p>",
                c.seed,
                esc(&crate::host::when(c.started_unix_ms)),
                c.duration_ms
            );
            if let Some(e) = &c.evidence_error {
                let _ = writeln!(h, "<p class=\"warn\">Evidence not kept: {}</p>", esc(e));
            }
            if let Some(path) = &c.evidence {
                let picture = pictures
                    .entry(path.clone())
                    .or_insert_with(|| picture(path, c.check));
                let _ = writeln!(
                    h,
                    "<figure>{picture}<figcaption>evidence: {} (spectrogram; marks: {})</figcaption></figure>",
                    esc(&path.display().to_string()),
                    marks_words(c.check)
                );
            }
            h.push_str("</div>\n");
        }
        h.push_str("</section>\n");
    }
    // Marks, for a reader of the file and for the layout test: anything wider than the
    // page is named on the body (`data-overflow`).
    h.push_str(
        "<script>addEventListener('load',function(){var w=document.documentElement.clientWidth,\
         b=[];document.querySelectorAll('body *').forEach(function(e){var r=e.getBoundingClientRect();\
         if(r.right>w+1)b.push(e.tagName.toLowerCase()+(e.id?'#'+e.id:''));});\
         document.body.setAttribute('data-overflow',b.length?b.slice(0,5).join(' '):'none');});\
         </script>\n</body></html>\n",
    );
    h
}

/// The session host a scenario ran against: the remote probe's host name.
/// The session host, or `-` when none is known.
fn host_of(s: &super::ScenarioRecord) -> String {
    s.session_host().unwrap_or("-").to_string()
}

/// The frequencies a check listens for, and the top of its picture.
fn marks(check: Check) -> (Vec<f64>, f64) {
    match check {
        Check::Output => (Direction::Output.alphabet_hz().to_vec(), 4000.0),
        Check::Capture => (Direction::Capture.alphabet_hz().to_vec(), 4000.0),
        Check::Continuity => (vec![continuity::TONE_HZ], 4000.0),
        Check::Quality => (quality::TONES_HZ.to_vec(), 20_000.0),
        Check::Speech => (Vec::new(), 8_000.0),
    }
}

fn marks_words(check: Check) -> &'static str {
    match check {
        Check::Output => "the output signature's 13 tones",
        Check::Capture => "the capture signature's 13 tones",
        Check::Continuity => "the continuity tone, 1987 Hz",
        Check::Quality => "the quality signal's 17 tones",
        Check::Speech => "the speech reference (no tones to mark)",
    }
}

/// Picture width and height, in pixels.
const COLUMNS: usize = 240;
const ROWS: usize = 120;
/// Seconds of a recording drawn, at most.
const MAX_SECONDS: f64 = 20.0;

/// The spectrogram of a recording as inline SVG, or a paragraph saying why not.
fn picture(path: &Path, check: Check) -> String {
    match spectrogram(path, check) {
        Ok(svg) => svg,
        Err(e) => format!("<p class=\"warn\">No picture: {}</p>", esc(&e)),
    }
}

fn spectrogram(path: &Path, check: Check) -> Result<String, String> {
    let mut reader =
        earshot_probe::recording::RecordingReader::open(path).map_err(|e| e.to_string())?;
    let info = reader.info().clone();
    let rate = f64::from(info.sample_rate_hz);
    let limit = (rate * MAX_SECONDS) as usize;
    let mut mono: Vec<f32> = Vec::new();
    while let Some(planes) = reader.next_block().map_err(|e| e.to_string())? {
        let n = planes.first().map_or(0, Vec::len);
        let k = planes.len().max(1) as f32;
        mono.extend((0..n).map(|i| planes.iter().map(|p| p[i]).sum::<f32>() / k));
        if mono.len() >= limit {
            mono.truncate(limit);
            break;
        }
    }
    let (tones, top_hz) = marks(check);
    let top_hz = top_hz.min(rate / 2.0);
    let win = ((rate * 0.046) as usize).next_power_of_two().max(256);
    if mono.len() < win {
        return Err(format!("{}: too short to draw", path.display()));
    }
    let fft = realfft::RealFftPlanner::<f32>::new().plan_fft_forward(win);
    let mut input = fft.make_input_vec();
    let mut output = fft.make_output_vec();
    let hann: Vec<f32> = (0..win)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / win as f32).cos())
        .collect();
    let norm = hann.iter().sum::<f32>() / 2.0;
    let step = (mono.len() - win) as f64 / (COLUMNS - 1) as f64;
    // dB per (column, row), rows from the top (high frequencies) down.
    let mut pixels = vec![[0u8; 3]; COLUMNS * ROWS];
    for col in 0..COLUMNS {
        let at = (col as f64 * step) as usize;
        for ((x, s), w) in input.iter_mut().zip(&mono[at..at + win]).zip(&hann) {
            *x = s * w;
        }
        fft.process(&mut input, &mut output)
            .map_err(|e| format!("spectrogram: {e}"))?;
        for row in 0..ROWS {
            let hz = top_hz * (ROWS - row) as f64 / ROWS as f64;
            let hz_lo = top_hz * (ROWS - row - 1) as f64 / ROWS as f64;
            let (b0, b1) = (
                (hz_lo * win as f64 / rate) as usize,
                ((hz * win as f64 / rate) as usize).min(output.len() - 1),
            );
            let peak = (b0..=b1.max(b0))
                .map(|b| output[b].norm() / norm)
                .fold(0.0f32, f32::max);
            let db = 20.0 * f64::from(peak.max(1e-9)).log10();
            pixels[row * COLUMNS + col] = color((db + 100.0) / 80.0);
        }
    }
    let image = format!(
        "data:image/bmp;base64,{}",
        base64(&bmp(COLUMNS, ROWS, &pixels))
    );
    let seconds = mono.len() as f64 / rate;
    let (w, hgt) = (COLUMNS as f64 * 4.0, ROWS as f64 * 2.0);
    let mut svg = format!(
        "<svg class=\"spec\" viewBox=\"0 0 {} {}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <image href=\"{image}\" x=\"40\" y=\"0\" width=\"{w}\" height=\"{hgt}\" preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\"/>",
        w + 40.0,
        hgt + 18.0
    );
    for f in tones.iter().filter(|f| **f < top_hz) {
        let y = hgt * (1.0 - f / top_hz);
        let _ = write!(
            svg,
            "<line x1=\"30\" x2=\"40\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d00\" stroke-width=\"1.5\"/>\
             <line x1=\"40\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#f33\" stroke-width=\"0.6\" stroke-dasharray=\"2 6\" opacity=\"0.7\"/>",
            w + 40.0
        );
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"10\" font-size=\"10\">{:.0} kHz</text>\
         <text x=\"0\" y=\"{:.0}\" font-size=\"10\">0</text>\
         <text x=\"40\" y=\"{:.0}\" font-size=\"10\">0 s</text>\
         <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" text-anchor=\"end\">{seconds:.1} s</text></svg>",
        top_hz / 1000.0,
        hgt,
        hgt + 14.0,
        w + 40.0,
        hgt + 14.0
    );
    Ok(svg)
}

/// A dark-to-bright colour for `x` in 0..1 (clamped): black, violet, orange, pale yellow.
fn color(x: f64) -> [u8; 3] {
    let x = x.clamp(0.0, 1.0);
    let stops: [(f64, [f64; 3]); 4] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.4, [120.0, 28.0, 109.0]),
        (0.75, [237.0, 105.0, 37.0]),
        (1.0, [252.0, 255.0, 164.0]),
    ];
    for w in stops.windows(2) {
        let ((a, ca), (b, cb)) = (w[0], w[1]);
        if x <= b {
            let t = (x - a) / (b - a);
            return [0, 1, 2].map(|i| (ca[i] + (cb[i] - ca[i]) * t) as u8);
        }
    }
    [252, 255, 164]
}

/// An uncompressed 24-bit BMP of `pixels` (rows from the top).
fn bmp(width: usize, height: usize, pixels: &[[u8; 3]]) -> Vec<u8> {
    let row = (width * 3).div_ceil(4) * 4;
    let size = 54 + row * height;
    let mut b = Vec::with_capacity(size);
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&(size as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&54u32.to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&(width as i32).to_le_bytes());
    b.extend_from_slice(&(height as i32).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&((row * height) as u32).to_le_bytes());
    b.extend_from_slice(&2835u32.to_le_bytes());
    b.extend_from_slice(&2835u32.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    // Bottom row first; each pixel blue, green, red.
    for y in (0..height).rev() {
        for x in 0..width {
            let [r, g, bl] = pixels[y * width + x];
            b.extend_from_slice(&[bl, g, r]);
        }
        b.resize(b.len() + row - width * 3, 0);
    }
    b
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = u32::from(chunk[0]) << 16
            | u32::from(*chunk.get(1).unwrap_or(&0)) << 8
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(A[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn text_is_escaped_and_a_bitmap_has_its_size() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let b = bmp(3, 2, &[[255, 0, 0]; 6]);
        assert_eq!(&b[..2], b"BM");
        assert_eq!(b.len(), 54 + 12 * 2);
        assert_eq!(&b[54..57], &[0, 0, 255]);
    }

    #[test]
    fn an_empty_run_renders_and_names_nothing() {
        let html = render(&Run::new(), &mut HashMap::new());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("0 scenario(s)"));
        // Nothing from elsewhere: no picture, so not even the SVG namespace.
        assert!(!html.contains("http"), "{html}");
    }
}
