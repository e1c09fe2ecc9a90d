"""Laboratory units. The registry stores total bilirubin in µmol/L; a centre may enter and read mg/dL.

Total bilirubin's molar mass is 584.66 g/mol, so 1 mg/dL = 10 mg/L ÷ 584.66 g/mol = 17.104 µmol/L;
laboratories and the SI conversion tables (e.g. AMA Manual of Style, SI conversion table) use 17.1.
"""

from decimal import ROUND_HALF_UP, Decimal

from sites.models import BilirubinUnit

MICROMOL_PER_L_PER_MG_PER_DL = Decimal("17.1")


def bilirubin_to_micromol(value, unit):
    """A bilirubin entered in ``unit`` as stored: µmol/L with one decimal."""
    if value is None:
        return None
    value = Decimal(str(value))
    if unit == BilirubinUnit.MG_PER_DL:
        value = value * MICROMOL_PER_L_PER_MG_PER_DL
    elif unit != BilirubinUnit.MICROMOL_PER_L:
        raise ValueError(f"Unknown bilirubin unit {unit!r}: use µmol/L or mg/dL.")
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def bilirubin_from_micromol(value, unit):
    """A stored bilirubin (µmol/L) shown in ``unit``: mg/dL with two decimals, µmol/L with one."""
    if value is None:
        return None
    value = Decimal(str(value))
    if unit == BilirubinUnit.MG_PER_DL:
        return (value / MICROMOL_PER_L_PER_MG_PER_DL).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if unit != BilirubinUnit.MICROMOL_PER_L:
        raise ValueError(f"Unknown bilirubin unit {unit!r}: use µmol/L or mg/dL.")
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
