"""The study's published figures that the simulated demo cohort is calibrated to.

Each target is named once with where it comes from in the study (the table or figure, or the Results text; the
study's Table 1 is an image, its figures are quoted in the Results text). Per-sex pairs are
``{"male": ..., "female": ...}``. Everything the simulator *chooses* (spreads, slopes, prevalences the
study does not print) lives in :mod:`engine.demo.cohort.params`, not here.
"""

from __future__ import annotations

import math
from types import MappingProxyType

from store.metrics import LOW_ALMI_KG_M2, WEAK_GRIP_KG
from store.vocabulary import SEX_WORDS
from store.vocabulary import SEXES as SEX_CODES

# --- Table 1 / Results paragraph 1: the analysed cohort --------------------------------------------
N_PARTICIPANTS = 37_004  # Results: "37,004 participants"
N_MEN = 17_920  # Results: "17,920 men and 19,084 women"
N_WOMEN = 19_084
MALE_SHARE = N_MEN / N_PARTICIPANTS
AGE_MEAN = 64.5  # Results: "mean age of 64.5 +/- 7.9 years"
AGE_SD = 7.9
AGE_MIN = 50.0  # Results: selected "based on age (> 50 years)"

HEIGHT_CM = MappingProxyType({"male": 176.0, "female": 162.7})  # Results: "taller (176.0 vs. 162.7 cm)"
WEIGHT_KG = MappingProxyType({"male": 83.7, "female": 69.0})  # Results: "heavier (83.7 vs. 69.0 kg)"
GRIP_MAX_KG = MappingProxyType({"male": 39.3, "female": 24.1})  # Results: "grip strength (39.3 vs. 24.1 kg)"
ALMI = MappingProxyType({"male": 8.18, "female": 6.53})  # Results: "ALMI (8.18 vs. 6.53 kg/m2)"

# Results: "1.13% of the total sample had confirmed sarcopenia ... men (1.20%) ... women (1.06%)"
SARCOPENIA_PREVALENCE = 0.0113
SARCOPENIA_PREVALENCE_BY_SEX = MappingProxyType({"male": 0.0120, "female": 0.0106})

# --- Figure 3: concordance with DEXA (pooled over both sexes) --------------------------------------
R_TMV_LEGS_LEAN = 0.936  # Fig. 3a: TMV vs DEXA legs lean mass
R_TVI_ALMI = 0.885  # Fig. 3b: TVI vs ALMI

# --- Figure 4b: TMV medians (cm3) in the youngest and the oldest age stratum -----------------------
# The study's youngest stratum is 40-49; this cohort starts at 50 (Results), so the demo places the
# "youngest" median on 50-59. The oldest stratum is 80+.
TMV_MEDIAN_YOUNGEST = MappingProxyType({"male": 12_158.0, "female": 8_358.0})
TMV_MEDIAN_OLDEST = MappingProxyType({"male": 9_550.0, "female": 6_894.0})
YOUNGEST_STRATUM = (50.0, 60.0)  # [lo, hi) years
OLDEST_STRATUM = (80.0, math.inf)

# --- Figure 5 / Methods: tertiles and the associations --------------------------------------------
PA_TERTILE_CUTS = (0.41, 0.48)  # Methods: "low (< 0.41), middle (0.41-0.48), and high (> 0.48)"
# Fig. 5b text: "median L/R asymmetry was 3.1% (IQR 1.4-4.9%)". (Its "20% exceeding 5%" cannot hold
# together with an upper quartile of 4.9 %, so the quartiles are the target.)
LR_ASYM_MEDIAN_PCT = 3.1
LR_ASYM_IQR_PCT = (1.4, 4.9)

# Fig. 5a / Table 2: odds ratios, high vs low P/A tertile (the study adjusts for age, sex, BMI and
# activity; the dashboard's minimal adjustment is age and sex). The simulator solves each on its own sample so the mean of
# the two adjustments' log ORs is the target; each adjustment then misses it by chance imbalance only.
PA_HIGH_VS_LOW_OR = MappingProxyType(
    {
        "weak_grip": 1.60,  # OR 1.60 (1.45-1.77)
        "sarcopenia": 1.42,  # OR 1.42 (1.13-1.78)
        "died": 1.49,  # OR 1.49 (1.23-1.81)
        "falls": 1.12,  # OR 1.12 (1.05-1.20)
        "low_muscle_mass": 1.02,  # OR 1.02 (0.93-1.11)
    }
)
# Fig. 5b: L/R asymmetry "showed no significant associations"; the demo generates none, and spreads the
# asymmetry evenly within outcome cells so the sample shows none either.
LR_ASYM_HIGH_VS_LOW_OR = 1.0

# The demo keys its targets by sex word ("male"/"female"); the words and the store's coding are
# store.vocabulary's.
SEXES: tuple[str, ...] = tuple(SEX_WORDS[code] for code in SEX_CODES)

# --- EWGSOP2 cut-offs the outcomes are defined with: the store's, keyed as the demo's targets are ------
WEAK_GRIP_BELOW_KG = MappingProxyType({SEX_WORDS[code]: cut for code, cut in WEAK_GRIP_KG.items()})
LOW_ALMI_BELOW = MappingProxyType({SEX_WORDS[code]: cut for code, cut in LOW_ALMI_KG_M2.items()})
