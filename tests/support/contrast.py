"""Text contrast in a real browser page: WCAG 2's contrast ratio of every visible text.

``low_contrast(page)`` evaluates a small script in the page. For every element that has text of
its own (a non-blank text node child) and is rendered (it has a box, is not ``visibility:
hidden`` and not fully transparent), it takes the computed text colour and the effective
background: the element's own background colour composited over its ancestors' ones, up to
the canvas (white). Semi-transparent text is composited over that background too. The ratio is
WCAG 2's ``(L1 + 0.05) / (L2 + 0.05)`` with the relative luminance of sRGB colours. Background
images and gradients are not considered (the pages use none); an element with one is reported
so that a change cannot hide a failure.

Used by the web chat's browser tests, and meant for the staff app's too.
"""

from __future__ import annotations

from typing import Any

# Returns [{"text": …, "tag": …, "color": …, "background": …, "ratio": …}] for every text element.
_SCRIPT = r"""
() => {
  const parse = (value) => {
    const m = value.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const parts = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const over = (top, bottom) => {
    const a = top.a + bottom.a * (1 - top.a);
    if (a === 0) return { r: 0, g: 0, b: 0, a: 0 };
    const mix = (t, b) => (t * top.a + b * bottom.a * (1 - top.a)) / a;
    return { r: mix(top.r, bottom.r), g: mix(top.g, bottom.g), b: mix(top.b, bottom.b), a };
  };
  const channel = (c) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : Math.pow((s + 0.055) / 1.055, 2.4);
  };
  const luminance = (c) => 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  const background = (element) => {
    const layers = [];
    let image = false;
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      const style = getComputedStyle(node);
      if (style.backgroundImage && style.backgroundImage !== "none") image = true;
      const colour = parse(style.backgroundColor);
      if (colour && colour.a > 0) {
        layers.push(colour);
        if (colour.a >= 1) break;
      }
    }
    let result = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i -= 1) result = over(layers[i], result);
    return { colour: result, image };
  };
  const visible = (element) => {
    if (!element.getClientRects().length) return false;
    const style = getComputedStyle(element);
    if (style.visibility !== "visible") return false;
    for (let node = element; node && node.nodeType === 1; node = node.parentElement) {
      if (Number(getComputedStyle(node).opacity) === 0) return false;
    }
    const box = element.getBoundingClientRect();
    return box.width > 1 && box.height > 1;
  };
  const found = [];
  for (const element of document.body.querySelectorAll("*")) {
    const own = Array.from(element.childNodes)
      .filter((node) => node.nodeType === 3 && node.textContent.trim())
      .map((node) => node.textContent.trim())
      .join(" ");
    if (!own || !visible(element)) continue;
    const style = getComputedStyle(element);
    const back = background(element);
    const text = over(parse(style.color), back.colour);
    const [l1, l2] = [luminance(text), luminance(back.colour)].sort((x, y) => y - x);
    found.push({
      text: own.slice(0, 60),
      tag: element.tagName.toLowerCase() + (element.className ? "." + String(element.className).split(" ").join(".") : ""),
      color: style.color,
      background: `rgb(${Math.round(back.colour.r)}, ${Math.round(back.colour.g)}, ${Math.round(back.colour.b)})`,
      image: back.image,
      ratio: (l1 + 0.05) / (l2 + 0.05),
    });
  }
  return found;
}
"""


async def contrasts(page: Any) -> list[dict[str, Any]]:
    """Every visible text element of ``page`` (a Playwright page) with its contrast ratio."""
    result: list[dict[str, Any]] = await page.evaluate(_SCRIPT)
    return result


async def low_contrast(page: Any, minimum: float = 4.5) -> list[str]:
    """The visible texts of ``page`` whose contrast is below ``minimum`` (WCAG AA: 4.5:1), or
    that stand on a background image the script cannot measure, described for a test failure."""
    return [
        f"{item['tag']} {item['text']!r}: {item['ratio']:.2f}:1 ({item['color']} on {item['background']}"
        + (", over a background image)" if item["image"] else ")")
        for item in await contrasts(page)
        if item["ratio"] < minimum or item["image"]
    ]
