// keyupEditAttention of A1111 v1.10 (javascript/edit-attention.js) with its default options,
// reduced to text in, text out (no DOM): reads JSON lines {text, start, end, plus} on stdin and
// writes [text, selectionStart, selectionEnd] lines. WRITTEN FROM MEMORY of A1111's source, not
// copied from it: it pins down JavaScript's number handling (parseFloat, toPrecision, String of a
// number) for tests/core/test_prompt_weight.py, which compares desktop/core/prompt_weight.py with it.
const opts = {
    keyedit_precision_attention: 0.1,
    keyedit_precision_extra: 0.05,
    keyedit_delimiters: ".,\\/!?%^*;:{}=`~() ",
    keyedit_delimiters_whitespace: ["Tab", "Carriage Return", "Line Feed"],
};

function editAttention(text, selectionStart, selectionEnd, isPlus) {
    function selectCurrentParenthesisBlock(OPEN, CLOSE) {
        if (selectionStart !== selectionEnd) return false;
        const before = text.substring(0, selectionStart);
        let beforeParen = before.lastIndexOf(OPEN);
        if (beforeParen == -1) return false;
        let beforeClosingParen = before.lastIndexOf(CLOSE);
        if (beforeClosingParen != -1 && beforeClosingParen > beforeParen) return false;
        const after = text.substring(selectionStart);
        let afterParen = after.indexOf(CLOSE);
        if (afterParen == -1) return false;
        let afterOpeningParen = after.indexOf(OPEN);
        if (afterOpeningParen != -1 && afterOpeningParen < afterParen) return false;
        const parenContent = text.substring(beforeParen + 1, selectionStart + afterParen);
        if (/.*:-?[\d.]+/s.test(parenContent)) {
            const lastColon = parenContent.lastIndexOf(":");
            selectionStart = beforeParen + 1;
            selectionEnd = selectionStart + lastColon;
        } else {
            selectionStart = beforeParen + 1;
            selectionEnd = selectionStart + parenContent.length;
        }
        return true;
    }

    function selectCurrentWord() {
        if (selectionStart !== selectionEnd) return false;
        const whitespace_delimiters = {"Tab": "\t", "Carriage Return": "\r", "Line Feed": "\n"};
        let delimiters = opts.keyedit_delimiters;
        for (let i of opts.keyedit_delimiters_whitespace) delimiters += whitespace_delimiters[i];
        while (!delimiters.includes(text[selectionStart - 1]) && selectionStart > 0) selectionStart--;
        while (!delimiters.includes(text[selectionEnd]) && selectionEnd < text.length) selectionEnd++;
        while (text[selectionStart] == " " && selectionStart < selectionEnd) selectionStart++;
        while (text[selectionEnd - 1] == " " && selectionEnd > selectionStart) selectionEnd--;
        return true;
    }

    if (!selectCurrentParenthesisBlock('<', '>') && !selectCurrentParenthesisBlock('(', ')') && !selectCurrentParenthesisBlock('[', ']')) {
        selectCurrentWord();
    }
    const unchanged = [text, selectionStart, selectionEnd];

    var closeCharacter = ')';
    var delta = opts.keyedit_precision_attention;
    var start = selectionStart > 0 ? text[selectionStart - 1] : "";
    var end = text[selectionEnd];

    if (start == '<') {
        closeCharacter = '>';
        delta = opts.keyedit_precision_extra;
    } else if (start == '(' && end == ')' || start == '[' && end == ']') {
        let numParen = 0;
        while (text[selectionStart - numParen - 1] == start && text[selectionEnd + numParen] == end) numParen++;
        if (start == "[") weight = (1 / 1.1) ** numParen;
        else weight = 1.1 ** numParen;
        weight = Math.round(weight / opts.keyedit_precision_attention) * opts.keyedit_precision_attention;
        text = text.slice(0, selectionStart - numParen) + "(" + text.slice(selectionStart, selectionEnd) + ":" + weight + ")" + text.slice(selectionEnd + numParen);
        selectionStart -= numParen - 1;
        selectionEnd -= numParen - 1;
    } else if (start != '(') {
        while (selectionEnd > selectionStart && text[selectionEnd - 1] == ' ') selectionEnd--;
        if (selectionStart == selectionEnd) return unchanged;
        text = text.slice(0, selectionStart) + "(" + text.slice(selectionStart, selectionEnd) + ":1.0)" + text.slice(selectionEnd);
        selectionStart++;
        selectionEnd++;
    }

    if (text[selectionEnd] != ':') return unchanged;
    var weightLength = text.slice(selectionEnd + 1).indexOf(closeCharacter) + 1;
    var weight = parseFloat(text.slice(selectionEnd + 1, selectionEnd + weightLength));
    if (isNaN(weight)) return unchanged;

    weight += isPlus ? delta : -delta;
    weight = parseFloat(weight.toPrecision(12));
    if (Number.isInteger(weight)) weight += ".0";

    if (closeCharacter == ')' && weight == 1) {
        var endParenPos = text.substring(selectionEnd).indexOf(')');
        text = text.slice(0, selectionStart - 1) + text.slice(selectionStart, selectionEnd) + text.slice(selectionEnd + endParenPos + 1);
        selectionStart--;
        selectionEnd--;
    } else {
        text = text.slice(0, selectionEnd + 1) + weight + text.slice(selectionEnd + weightLength);
    }
    return [text, selectionStart, selectionEnd];
}

const lines = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
const out = lines.map((line) => {
    const c = JSON.parse(line);
    return JSON.stringify(editAttention(c.text, c.start, c.end, c.plus));
});
process.stdout.write(out.join("\n") + "\n");
