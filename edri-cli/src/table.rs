//! Plain text tables: columns padded to their widest cell.

/// `head` and `rows` as left-aligned columns two spaces apart, one line each, no trailing
/// spaces.
pub(crate) fn render<const N: usize>(head: &[String; N], rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in std::iter::once(head).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(head).chain(rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count()) + 2));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let head = ["A".to_owned(), "B".to_owned()];
        let rows = [["long".to_owned(), "x".to_owned()], ["s".to_owned(), String::new()]];
        assert_eq!(super::render(&head, &rows), "A     B\nlong  x\ns\n");
    }
}
