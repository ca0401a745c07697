"""ISO 4217 currency codes and their minor units (decimal places).

Kept here rather than pulled from a locale library: the platform needs only the code list
and the number of decimals to quantize money.
"""

from decimal import Decimal

_TWO_DECIMALS = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL
MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR
PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG
"""
_NO_DECIMALS = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF"
_THREE_DECIMALS = "BHD IQD JOD KWD LYD OMR TND"


def _codes(text: str) -> list[str]:
    return text.split()


# code -> minor units. Active ISO 4217 codes (funds and metals left out).
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(_codes(_TWO_DECIMALS), 2),
    **dict.fromkeys(_codes(_NO_DECIMALS), 0),
    **dict.fromkeys(_codes(_THREE_DECIMALS), 3),
}

CURRENCY_CHOICES = sorted((code, code) for code in MINOR_UNITS)


def is_valid_currency(code: str) -> bool:
    return code in MINOR_UNITS


def money_quantum(code: str) -> Decimal:
    """The smallest unit of a currency as a Decimal: 0.01 for EUR, 1 for JPY."""
    return Decimal(1).scaleb(-MINOR_UNITS[code])
