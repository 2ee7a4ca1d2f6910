"""The live loss curve of a training run, painted with QPainter (PySide6-Essentials has no QtCharts).

Diffusion loss is noisy from step to step (the timestep is random), so the raw loss is drawn
faintly and the moving average, which shows whether the model is learning, as a solid line. A run
has thousands of steps and the plot a few hundred pixels: points are reduced to one min-max
segment per pixel column before drawing, so a long run paints as fast as a short one and a
spike is never lost. Colours come from the palette, so the plot reads in light and dark mode.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

_TOP_QUANTILE = 0.99  # the y axis ends just above this quantile: one wild early step does not flatten the curve
_MARGIN = 8


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten) spanning ``low``..``high``, about ``count`` of them.

    >>> nice_ticks(0, 1000, 5)
    [0.0, 200.0, 400.0, 600.0, 800.0, 1000.0]
    >>> nice_ticks(0.031, 0.162, 4)
    [0.05, 0.1, 0.15]
    """
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    raw = (high - low) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step - 1e-9)
    ticks = []
    value = first * step
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        first += 1
        value = first * step
    return ticks


def _decimals(ticks: list[float]) -> int:
    if len(ticks) < 2:
        return 3
    step = abs(ticks[1] - ticks[0])
    return max(0, min(6, -math.floor(math.log10(step)) if step > 0 else 3))


class LossPlot(QWidget):
    """Raw loss as faint min-max columns, the moving average as a line, epoch boundaries as light rules."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("loss_plot")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(240, 180)
        self._steps: list[int] = []
        self._losses: list[float] = []
        self._averages: list[float] = []
        self._epochs: list[int] = []
        self._total_steps = 0
        self._y_range: tuple[float, float] | None = None  # cached until the data changes
        self._placeholder = ""
        self._loss_label = ""
        self._average_label = ""
        self.retranslate()

    # --- data ------------------------------------------------------------------------------------

    def clear(self) -> None:
        self._steps.clear()
        self._losses.clear()
        self._averages.clear()
        self._epochs.clear()
        self._total_steps = 0
        self._y_range = None
        self.update()

    def add(self, step: int, loss: float, average: float) -> None:
        """One step's loss and moving average; NaN or infinite values are kept out of the drawing."""
        if self._steps and step <= self._steps[-1]:
            # A resumed run repeats steps already shown: the new values replace the old ones.
            cut = bisect.bisect_left(self._steps, step)
            del self._steps[cut:], self._losses[cut:], self._averages[cut:]
        self._steps.append(int(step))
        self._losses.append(float(loss))
        self._averages.append(float(average))
        self._y_range = None
        self.update()

    def set_epoch_boundaries(self, steps: Iterable[int]) -> None:
        """Steps after which an epoch ended (drawn as light vertical lines)."""
        self._epochs = sorted({int(step) for step in steps if step > 0})
        self.update()

    def add_epoch_boundary(self, step: int) -> None:
        if step > 0 and step not in self._epochs:
            bisect.insort(self._epochs, int(step))
            self.update()

    def set_total_steps(self, total: int) -> None:
        """The run's length: the x axis spans it, so the curve grows from left to right."""
        self._total_steps = max(0, int(total))
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def point_count(self) -> int:
        return len(self._steps)

    def points(self) -> list[tuple[int, float, float]]:
        return list(zip(self._steps, self._losses, self._averages))

    def epoch_boundaries(self) -> list[int]:
        return list(self._epochs)

    # --- Qt --------------------------------------------------------------------------------------

    def retranslate(self) -> None:
        self._loss_label = self.tr("loss")
        self._average_label = self.tr("average")
        self.update()

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(event)

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(520, 240)

    def paintEvent(self, _event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        palette = self.palette()
        frame = QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5)
        painter.setPen(QPen(_alpha(palette.color(QPalette.ColorRole.Mid), 140), 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(frame, 6, 6)
        y_range = self._value_range()
        if y_range is None:
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        x_range = self._step_range()
        metrics = painter.fontMetrics()
        y_ticks = nice_ticks(*y_range, count=max(3, self.height() // 50))
        decimals = _decimals(y_ticks)
        y_labels = [f"{value:.{decimals}f}" for value in y_ticks]
        left = _MARGIN + max((metrics.horizontalAdvance(label) for label in y_labels), default=20) + 6
        top = _MARGIN + metrics.height() + 4  # the legend
        bottom = self.height() - _MARGIN - metrics.height() - 4
        plot = QRectF(left, top, max(10.0, self.width() - left - 2 * _MARGIN), max(10.0, bottom - top))

        def x_of(step: float) -> float:
            return plot.left() + (step - x_range[0]) / (x_range[1] - x_range[0]) * plot.width()

        def y_of(value: float) -> float:
            return plot.bottom() - (value - y_range[0]) / (y_range[1] - y_range[0]) * plot.height()

        text = palette.color(QPalette.ColorRole.WindowText)
        grid = _alpha(palette.color(QPalette.ColorRole.Mid), 90)
        # grid, axes labels
        painter.setPen(QPen(grid, 1))
        for value, label in zip(y_ticks, y_labels):
            y = y_of(value)
            painter.setPen(QPen(grid, 1))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            painter.setPen(_alpha(text, 170))
            painter.drawText(QRectF(_MARGIN, y - metrics.height() / 2, left - _MARGIN - 6, metrics.height()),
                             int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), label)  # fmt: skip
        x_ticks = [tick for tick in nice_ticks(*x_range, count=max(2, int(plot.width() // 90))) if tick == int(tick)]
        for value in x_ticks:
            x = x_of(value)
            label = str(int(value))
            width = metrics.horizontalAdvance(label)
            painter.setPen(_alpha(text, 170))
            painter.drawText(QRectF(x - width / 2 - 2, plot.bottom() + 3, width + 4, metrics.height()), int(Qt.AlignmentFlag.AlignCenter), label)
        # epoch boundaries
        painter.setPen(QPen(_alpha(palette.color(QPalette.ColorRole.Mid), 160), 1, Qt.PenStyle.DashLine))
        for step in self._epochs:
            if x_range[0] < step < x_range[1]:
                painter.drawLine(QPointF(x_of(step), plot.top()), QPointF(x_of(step), plot.bottom()))
        # curves
        accent = palette.color(QPalette.ColorRole.Highlight)
        raw_colour = _alpha(accent, 80)
        painter.save()
        painter.setClipRect(plot.adjusted(-1, -2, 1, 2))
        columns = self._columns(x_of, int(plot.width()))
        if len(self._steps) * 3 < plot.width():
            self._paint_sparse_losses(painter, x_of, y_of, raw_colour)
            columns_for_raw = []
        else:
            columns_for_raw = columns
        painter.setPen(QPen(raw_colour, 1.5))
        for x, low, high, _average in columns_for_raw:
            if low is None:
                continue
            if high - low < 1e-12:
                painter.drawPoint(QPointF(x, y_of(low)))
            else:
                painter.drawLine(QPointF(x, y_of(low)), QPointF(x, y_of(high)))
        path = QPainterPath()
        started = False
        for x, _low, _high, average in columns:
            if average is None:
                started = False  # a gap (NaN) breaks the line
                continue
            point = QPointF(x, y_of(average))
            if started:
                path.lineTo(point)
            else:
                path.moveTo(point)
                started = True
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(accent, 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        painter.drawPath(path)
        painter.restore()
        # axes and legend
        painter.setPen(QPen(_alpha(text, 120), 1))
        painter.drawLine(plot.bottomLeft(), plot.bottomRight())
        painter.drawLine(plot.bottomLeft(), plot.topLeft())
        self._paint_legend(painter, plot, accent, raw_colour, text)

    # --- helpers ---------------------------------------------------------------------------------

    def _paint_legend(self, painter: QPainter, plot: QRectF, accent: QColor, raw: QColor, text: QColor) -> None:
        metrics = painter.fontMetrics()
        y = _MARGIN + metrics.height() / 2 + 1
        x = plot.right()
        for label, colour, width in ((self._average_label, accent, 2.0), (self._loss_label, raw, 4.0)):
            label_width = metrics.horizontalAdvance(label)
            x -= label_width
            painter.setPen(_alpha(text, 190))
            painter.drawText(QRectF(x, y - metrics.height() / 2, label_width + 2, metrics.height()), int(Qt.AlignmentFlag.AlignVCenter), label)
            x -= 22
            painter.setPen(QPen(colour, width, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
            painter.drawLine(QPointF(x, y), QPointF(x + 16, y))
            x -= 14

    def _paint_sparse_losses(self, painter: QPainter, x_of, y_of, colour: QColor) -> None:
        """Few points for the width (a short run): a faint line through dots, each step visible."""
        path = QPainterPath()
        started = False
        dots = []
        for step, loss in zip(self._steps, self._losses):
            if not math.isfinite(loss):
                started = False
                continue
            point = QPointF(x_of(step), y_of(loss))
            dots.append(point)
            if started:
                path.lineTo(point)
            else:
                path.moveTo(point)
                started = True
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(colour, 1.0))
        painter.drawPath(path)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(_alpha(colour, min(255, colour.alpha() * 2)))
        for point in dots:
            painter.drawEllipse(point, 2.2, 2.2)

    def _step_range(self) -> tuple[float, float]:
        """From 0 (or just before the first step of a resumed run) to the run's length."""
        first = self._steps[0] - 1 if self._steps[0] > 1 else 0
        last = max(self._steps[-1], self._total_steps, first + 1)
        return float(first), float(last)

    def _value_range(self) -> tuple[float, float] | None:
        """From the lowest value to just above the 99th percentile of the finite losses and averages."""
        if self._y_range is not None:
            return self._y_range
        values = sorted(v for v in (*self._losses, *self._averages) if math.isfinite(v))
        if not values:
            return None
        low = values[0]
        high = max(values[min(len(values) - 1, int(len(values) * _TOP_QUANTILE))], max((v for v in self._averages if math.isfinite(v)), default=low))
        if high - low < 1e-9:
            low, high = low - max(abs(low) * 0.1, 1e-3), high + max(abs(high) * 0.1, 1e-3)
        pad = (high - low) * 0.06
        self._y_range = (max(0.0, low - pad) if low >= 0 else low - pad, high + pad)
        return self._y_range

    def _columns(self, x_of, width: int) -> list[tuple[float, float | None, float | None, float | None]]:
        """One (x, min loss, max loss, last average) per pixel column that has points, left to right."""
        columns: dict[int, list] = {}
        for step, loss, average in zip(self._steps, self._losses, self._averages):
            x = x_of(step)
            key = int(x)
            column = columns.get(key)
            if column is None:
                column = columns[key] = [x, None, None, None]
            if math.isfinite(loss):
                column[1] = loss if column[1] is None else min(column[1], loss)
                column[2] = loss if column[2] is None else max(column[2], loss)
            if math.isfinite(average):
                column[3] = average
        return [tuple(column) for _key, column in sorted(columns.items())]


def _alpha(colour: QColor, alpha: int) -> QColor:
    result = QColor(colour)
    result.setAlpha(alpha)
    return result
