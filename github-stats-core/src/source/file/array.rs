//! Splitting a JSON array into its elements as its bytes stream by.

/// Splits a JSON array into its elements as its bytes stream by, without parsing them: it
/// follows strings (and their escapes) and nesting depth to find the commas and the bracket
/// that end elements, and writes each element out as one line (a line break between tokens
/// becomes a space) for the JSON lines parser. It holds nothing itself: an element goes straight
/// to the output, and one growing past the record cap is taken out again and the rest of it
/// skipped. Each element is then judged by the parser alone: the splitter is lenient about
/// what lies between elements (stray commas), and counts as one bad record an element cut
/// short by the end of the input, or anything but whitespace or another array after the end.
#[derive(Debug, Default)]
pub(super) struct ArraySplitter {
    state: SplitState,
    /// Nesting depth inside the current element.
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The current element outgrew the cap: its bytes are dropped until its end.
    skipping: bool,
    /// Where the current element starts in the output.
    start: usize,
    skipped: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) enum SplitState {
    /// Before the opening bracket.
    #[default]
    Before,
    /// Inside the array, between elements.
    Between,
    /// Inside an element.
    Element,
    /// After the closing bracket.
    After,
    /// After something that is neither whitespace nor an array, past the end: ignored.
    Trailing,
}

impl ArraySplitter {
    /// Splits `input`, appending elements to `out`. Stops after an element once `out` holds
    /// `target` bytes; returns the bytes of `input` consumed, and whether it stopped so (`out`
    /// then ends with a whole element).
    pub(super) fn feed(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        target: usize,
        cap: usize,
    ) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                SplitState::Before | SplitState::After => {
                    if b == b'[' {
                        self.state = SplitState::Between;
                    } else if !b.is_ascii_whitespace() {
                        // Only whitespace or another array may follow an array.
                        self.skipped += 1;
                        self.state = SplitState::Trailing;
                    }
                    i += 1;
                }
                SplitState::Trailing => return (input.len(), false),
                SplitState::Between => {
                    if b == b']' {
                        self.state = SplitState::After;
                    } else if !(b.is_ascii_whitespace() || b == b',') {
                        self.state = SplitState::Element;
                        self.depth = 0;
                        self.in_string = false;
                        self.escaped = false;
                        self.skipping = false;
                        self.start = out.len();
                        continue;
                    }
                    i += 1;
                }
                SplitState::Element => {
                    if self.in_string {
                        // Copy the run up to the next quote, escape or line break at once.
                        let run = if self.escaped {
                            self.escaped = false;
                            1
                        } else {
                            match memchr::memchr3(b'"', b'\\', b'\n', &input[i..]) {
                                None => input.len() - i,
                                Some(0) => {
                                    match b {
                                        b'"' => self.in_string = false,
                                        b'\\' => self.escaped = true,
                                        _ => {}
                                    }
                                    1
                                }
                                Some(n) => n,
                            }
                        };
                        self.emit(&input[i..i + run], out, cap);
                        i += run;
                        continue;
                    }
                    match b {
                        b'"' => self.in_string = true,
                        b'{' | b'[' => self.depth = self.depth.saturating_add(1),
                        b'}' | b']' if self.depth > 0 => self.depth -= 1,
                        b',' | b']' if self.depth == 0 => {
                            self.end_element(out);
                            self.state = if b == b']' {
                                SplitState::After
                            } else {
                                SplitState::Between
                            };
                            i += 1;
                            if out.len() >= target {
                                return (i, true);
                            }
                            continue;
                        }
                        _ => {}
                    }
                    self.emit(&input[i..=i], out, cap);
                    i += 1;
                }
            }
        }
        (input.len(), false)
    }

    /// Appends element bytes to `out`, a line break as a space (or, inside a string, where it
    /// is not allowed, as a control character that keeps the element invalid), unless the
    /// element is being skipped or now outgrows `cap`.
    pub(super) fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>, cap: usize) {
        if self.skipping {
            return;
        }
        if out.len() - self.start + bytes.len() > cap {
            out.truncate(self.start);
            self.skipping = true;
            return;
        }
        let at = out.len();
        out.extend_from_slice(bytes);
        if !bytes.contains(&b'\n') {
            return;
        }
        let in_string = self.in_string;
        for byte in &mut out[at..] {
            if *byte == b'\n' {
                *byte = if in_string { 0x01 } else { b' ' };
            }
        }
    }

    pub(super) fn end_element(&mut self, out: &mut Vec<u8>) {
        if self.skipping {
            self.skipped += 1;
            self.skipping = false;
        } else if out[self.start..].trim_ascii().is_empty() {
            out.truncate(self.start);
        } else {
            out.push(b'\n');
        }
    }

    /// The end of the input: an element still open (inside a string or a nested value) was cut
    /// short and is a bad record; a whole one missing only its closing bracket is kept.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state != SplitState::Element {
            return;
        }
        self.state = SplitState::After;
        if self.in_string || self.depth > 0 {
            if !self.skipping {
                out.truncate(self.start);
            }
            self.skipping = false;
            self.skipped += 1;
        } else {
            self.end_element(out);
        }
    }

    pub(super) fn take_skipped(&mut self) -> u64 {
        std::mem::take(&mut self.skipped)
    }
}
