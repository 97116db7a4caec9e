//! Plain-text tables for people at a terminal, aligned for Chinese text.

/// Columns a character takes in a terminal: CJK ideographs and full-width forms take two.
fn char_width(c: char) -> usize {
    match c as u32 {
        0x1100..=0x115F
        | 0x2E80..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

pub fn width(s: &str) -> usize {
    s.chars().map(char_width).sum()
}

/// Renders rows under a header, each column padded to its widest cell.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(width(cell));
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                text.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_wide_characters() {
        let out = render(
            &["a", "b"],
            &[
                vec!["办件".into(), "x".into()],
                vec!["abc".into(), "y".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        // "办件" is 4 columns wide, so column b starts at column 6 on every line.
        assert_eq!(lines[0], "a     b");
        assert_eq!(lines[1], "办件  x");
        assert_eq!(lines[2], "abc   y");
    }
}
