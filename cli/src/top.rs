//! `memtube top`: the rings of running processes, refreshed every interval.

use crate::discover::{self, Scope};
use crate::report::{self, RingReport};
use memtube_ring::Stats;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;
use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the UI looks for a signal while it waits for a key.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// Run the UI until `q`, Esc or Ctrl-C, or until SIGTERM, SIGHUP, SIGINT
/// or SIGQUIT arrives; the terminal is restored either way (and on a
/// panic, by ratatui's hook). Returns the signal that ended it, if any.
pub fn run(scope: Scope, interval: Duration, title: String) -> std::io::Result<Option<i32>> {
    let signalled = Arc::new(AtomicUsize::new(0));
    let mut handlers = Vec::new();
    for sig in [SIGTERM, SIGHUP, SIGINT, SIGQUIT] {
        handlers.push(signal_hook::flag::register_usize(
            sig,
            Arc::clone(&signalled),
            sig as usize,
        )?);
    }
    let mut term = ratatui::init();
    let result = main_loop(&mut term, scope, interval, &title, &signalled);
    ratatui::restore();
    for h in handlers {
        signal_hook::low_level::unregister(h);
    }
    result?;
    Ok(match signalled.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    })
}

struct Screen {
    rows: Vec<RingReport>,
    skipped: Vec<discover::Skipped>,
    processes: usize,
    not_permitted: usize,
}

fn main_loop(
    term: &mut ratatui::DefaultTerminal,
    scope: Scope,
    interval: Duration,
    title: &str,
    signalled: &AtomicUsize,
) -> std::io::Result<()> {
    // The last counters of each ring (by identity), for the rates.
    let mut last: HashMap<String, (Stats, Instant)> = HashMap::new();
    loop {
        if signalled.load(Ordering::SeqCst) != 0 {
            return Ok(());
        }
        let scan = discover::scan(&scope);
        let now = Instant::now();
        let mut rows = Vec::new();
        let mut skipped = scan.skipped.clone();
        let mut next = HashMap::new();
        for v in &scan.rings {
            match v.stats() {
                Ok(s) => {
                    let before = last
                        .get(&v.name())
                        .map(|(a, t)| (a, now.duration_since(*t).as_secs_f64()));
                    rows.push(report::report(v, before, s));
                    next.insert(v.name(), (s, now));
                }
                Err(e) => skipped.push(discover::Skipped {
                    id: v.name(),
                    pids: v.mappers.keys().copied().collect(),
                    reason: format!("invalid ring: {e}"),
                }),
            }
        }
        last = next;
        let screen = Screen {
            rows,
            skipped,
            processes: scan.processes,
            not_permitted: scan.not_permitted,
        };
        drop(scan);
        term.draw(|f| draw(f, &screen, title, interval))?;
        let deadline = Instant::now() + interval;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if signalled.load(Ordering::SeqCst) != 0 {
                return Ok(());
            }
            if event::poll(left.min(SIGNAL_POLL))? {
                if let Event::Key(k) = event::read()? {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if k.kind == KeyEventKind::Press
                        && (matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c)
                    {
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn side(s: &report::Side) -> String {
    match s.pid {
        Some(p) => format!("{p} {}", s.comm),
        None => "?".into(),
    }
}

fn draw(f: &mut Frame, s: &Screen, title: &str, interval: Duration) {
    let [head, table, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(6),
    ])
    .areas(f.area());
    let stuck = s.rows.iter().filter(|r| r.stuck == Some(true)).count();
    let mut line = vec![
        Span::styled("memtube top", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(format!(
            "  {title}  {} rings, {} processes seen, every {} ms",
            s.rows.len(),
            s.processes,
            interval.as_millis()
        )),
    ];
    if stuck > 0 {
        line.push(Span::styled(
            format!("  {stuck} STUCK"),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
    }
    f.render_widget(
        Paragraph::new(vec![
            Line::from(line),
            Line::from("q: quit   rates over the last interval; fill counts payload + headers"),
        ]),
        head,
    );

    let header = Row::new([
        "RING", "PRODUCER", "CONSUMER", "UID", "CAP", "MSG/S", "BYTES/S", "FILL", "FULL",
        "WAKES/S", "STATE", "AGE",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED));
    let rows = s.rows.iter().map(|r| {
        let rate = |f: fn(&report::Rates) -> f64| {
            r.rates.as_ref().map_or("-".into(), |x| report::human(f(x)))
        };
        let state = report::state_text(r);
        let uid = match (r.producer.uid, r.consumer.uid) {
            (Some(a), Some(b)) if a != b => format!("{a}/{b}"),
            (Some(a), _) | (None, Some(a)) => a.to_string(),
            _ => "?".into(),
        };
        let row = Row::new(vec![
            r.id.rsplit(':').next().unwrap_or("").to_string(),
            side(&r.producer),
            side(&r.consumer),
            uid,
            report::human(f64::from(r.capacity)),
            rate(|x| x.messages),
            rate(|x| x.bytes),
            format!("{:.0}%", r.fill * 100.0),
            r.stats.full_events.to_string(),
            rate(|x| x.wakes),
            state,
            r.age.map_or("?".into(), report::age),
        ]);
        if r.stuck == Some(true) {
            row.style(Style::new().fg(Color::Red).add_modifier(Modifier::BOLD))
        } else {
            row
        }
    });
    let widths = [
        Constraint::Length(8),
        Constraint::Min(14),
        Constraint::Min(14),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Min(17),
        Constraint::Length(6),
    ];
    f.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(" rings ")),
        table,
    );

    let mut notes: Vec<Line> = Vec::new();
    if s.not_permitted > 0 {
        notes.push(Line::from(format!(
            "{} processes not shown: the kernel would not show their mappings (another user's, or more privileged)",
            s.not_permitted
        )));
    }
    let foreign: Vec<&str> = s
        .rows
        .iter()
        .filter(|r| !r.holders_trusted)
        .map(|r| r.id.rsplit(':').next().unwrap_or(""))
        .collect();
    if !foreign.is_empty() {
        notes.push(Line::from(format!(
            "rings {}: a process in another pid namespace: the holder pids they record are not used",
            foreign.join(", ")
        )));
    }
    for k in s.skipped.iter().take(4) {
        notes.push(Line::from(format!(
            "skipped {} (pids {:?}): {}",
            k.id, k.pids, k.reason
        )));
    }
    if s.skipped.len() > 4 {
        notes.push(Line::from(format!(
            "... {} more skipped",
            s.skipped.len() - 4
        )));
    }
    f.render_widget(
        Paragraph::new(notes).block(Block::bordered().title(" notes ")),
        foot,
    );
}
