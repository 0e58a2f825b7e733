"""The simulator's own choices: spreads, slopes and per-structure sizes the study does not print.

The targets themselves are in :mod:`engine.demo.cohort.targets`. Values marked *tuned* were solved once by
:func:`engine.demo.cohort.tune.tune` (fixed-point iteration on 1,000,000 simulated participants, seed 7)
so that the study's published figures come out in expectation. Cohorts of at least
``engine.demo.cohort.solve.MIN_N_FOR_SAMPLE_FIT`` solve grip-on-ALMI, the TMV and legs-share noise and every
P/A-tertile effect on their own sample (engine.demo.cohort.draw); the tuned values are what smaller cohorts use
and where the solves fall back when a target is out of reach.
"""

from __future__ import annotations

from types import MappingProxyType

# Age: a normal truncated to [50, 83) whose integer part (UK Biobank field 21003 stores whole years)
# has mean 64.5 and SD 7.9. Solved with scipy.stats.truncnorm for a continuous mean of 65.0 and SD
# sqrt(7.9**2 - 1/12); flooring removes 0.5 years on average and 1/12 of variance.
AGE_UPPER = 83.0
AGE_TRUNCNORM_LOC = 64.043
AGE_TRUNCNORM_SCALE = 10.153

# Anthropometry (UK Biobank imaging visit, typical spreads).
HEIGHT_SD_CM = MappingProxyType({"male": 6.8, "female": 6.2})
HEIGHT_PER_YEAR_CM = -0.12  # older participants are shorter (cohort effect and ageing)
WEIGHT_SD_KG = MappingProxyType({"male": 13.0, "female": 12.5})
WEIGHT_PER_HEIGHT_CM = MappingProxyType({"male": 0.75, "female": 0.60})

# ALMI = mean + age slope + BMI slope + logistic residual (so low muscle mass is a logistic model).
ALMI_PER_YEAR = MappingProxyType({"male": -0.025, "female": -0.013})  # Fig. 4a: 0.25 / 0.13 per decade
ALMI_PER_BMI = 0.10
ALMI_LOGISTIC_SCALE = MappingProxyType({"male": 0.42, "female": 0.38})
ALMI_PA_HIGH_SHIFT = 0.0377  # *tuned*: logistic units; gives OR 1.02 for low muscle mass

# Max grip = mean + scale * (age + ALMI + P/A tertile effects + logistic residual), so weak grip is a
# logistic model in those terms. Scales give SDs of about 8.5 kg (men) and 5.7 kg (women).
GRIP_LOGISTIC_SCALE = MappingProxyType({"male": 4.3, "female": 2.9})
GRIP_AGE_PER_YEAR = 0.07  # logistic units per year: about 0.3 kg/yr (men), 0.2 kg/yr (women)
GRIP_PER_ALMI_Z = MappingProxyType({"male": 0.433, "female": 0.319})  # *tuned* for sarcopenia by sex
GRIP_PA_HIGH = 0.486  # *tuned*: log-odds of weak grip, high vs low P/A tertile (normal muscle mass)
GRIP_PA_HIGH_LOW_MASS = 0.420  # *tuned*: the same among those with low muscle mass (sarcopenia OR)
GRIP_OTHER_HAND_SD = 0.07  # the weaker hand: max * (1 - |N(0, sd)|)
GRIP_RIGHT_IS_MAX = 0.6

# DEXA: legs share of ALM, leg L/R asymmetry quantiles (engine.demo.cohort.targets), arm asymmetry.
LEGS_SHARE_OF_ALM = MappingProxyType({"male": 0.755, "female": 0.77})
LEGS_SHARE_SD = 0.0135  # *tuned* with TMV_LOG_SD for the two Fig. 3 correlations
ARM_ASYM_SD = 0.03

# TMV = ALM x legs share x exp(a_sex + g_sex * (age - 55) + N(0, sd)); a and g are solved per sample so
# the Fig. 4b stratum medians hold; sd (for r(TVI, ALMI)) and LEGS_SHARE_SD (for r(TMV, legs lean)) are
# solved per sample too; these are the defaults for cohorts too small to solve on.
TMV_LOG_SD = 0.0742

# P/A ratio: normal, cut points 0.41 / 0.48 are its 33rd / 67th percentiles.
PA_MEAN = 0.445
PA_SD = 0.0813  # 0.035 / 0.4307 (the 67th percentile of N(0, 1))
PA_PER_YEAR = 0.002  # anterior (quadriceps) atrophy with age raises P/A

# Outcomes generated directly: logit = base + age + sex + P/A tertile (middle tertile gets half).
DIED_BASE_RISK = 0.022
DIED_PER_YEAR = 0.09
DIED_MALE = 0.45
FALLS_BASE_RISK = 0.27
FALLS_PER_YEAR = 0.02
FALLS_MALE = -0.25
FALLS_MORE_THAN_ONE = 0.35  # share of fallers coded 3 ("more than one fall")

# Missingness, on top of the complete cases the calibration is checked on.
MISSING_DEXA = 0.015
MISSING_GRIP = 0.004
FALLS_DONT_KNOW = 0.006  # -1
FALLS_PREFER_NOT = 0.002  # -3
MISSING_ACTIVITY = 0.03
ACTIVITY_GROUP_SHARES = (0.18, 0.41, 0.41)  # IPAQ low / moderate / high

# Imaging visit dates and centres (UKB field 53 instance 2, field 54 codes).
VISIT_FIRST = "2014-05-01"
VISIT_LAST = "2020-03-01"
DEATH_FOLLOW_UP_END = "2024-11-30"
# Cheadle, Reading, Newcastle, Bristol
CENTRES = MappingProxyType({11025: 0.38, 11026: 0.20, 11027: 0.30, 11028: 0.12})

# Per-side volumes (cm3) of a typical man, in label order 1-25 (muscles) then bones 26-27; sized after
# published MRI muscle volumes (gluteus maximus and vastus lateralis largest; piriformis, obturators,
# quadratus femoris small; core muscles only the part inside the pelvis-to-knee field of view).
SIDE_VOLUME_CM3 = MappingProxyType(
    {
        "sartorius": 180.0,
        "rectus_femoris": 250.0,
        "vastus_lateralis": 560.0,
        "vastus_medialis": 380.0,
        "vastus_intermedius": 370.0,
        "gluteus_maximus": 860.0,
        "gluteus_medius": 350.0,
        "gluteus_minimus": 110.0,
        "piriformis": 55.0,
        "obturator_internus": 40.0,
        "obturator_externus": 35.0,
        "pectineus": 60.0,
        "tensor_fasciae_latae": 80.0,
        "adductor_magnus": 550.0,
        "adductor_longus": 160.0,
        "adductor_brevis": 110.0,
        "gracilis": 110.0,
        "quadratus_femoris": 40.0,
        "semimembranosus": 250.0,
        "semitendinosus": 200.0,
        "biceps_femoris": 280.0,
        "multifidus": 150.0,
        "iliopsoas": 400.0,
        "abdominal_oblique": 350.0,
        "rectus_abdominis": 120.0,
        "iliac_bone": 260.0,
        "femur": 380.0,
    }
)
BONE_SCALE_FEMALE = 0.76
STRUCTURE_SHARE_LOG_SD = 0.05  # person-to-person variation of a structure's share
SIDE_SPLIT_SD = 0.01  # MRI left share of a structure: 0.5 + N(0, sd)
BONE_LOG_SD = 0.08

# Fat fraction (Dixon fat / (fat + water)).
FF_MUSCLE_BASE = 0.075
FF_FEMALE = 0.02
FF_PER_YEAR = 0.0015
FF_PERSON_SD = 0.015
FF_STRUCTURE_SD = 0.008
FF_OFFSET = MappingProxyType(
    {
        "gluteus_maximus": 0.02,
        "multifidus": 0.03,
        "abdominal_oblique": 0.01,
        "sartorius": 0.01,
        "gracilis": 0.01,
    }
)
FF_BONE_BASE = 0.65  # yellow marrow
FF_BONE_PER_YEAR = 0.003

# AMRA's body composition of the same scans (engine.demo.cohort.amra): simulated from the MSMV
# structures, since no AMRA values can ship. Per-side compartment and whole-thigh noise stand for
# AMRA's own segmentation differing from MSMV's; the spreads are choices, not published agreement.
AMRA_COMPARTMENT_LOG_SD = 0.05
AMRA_THIGH_LOG_SD = 0.04
AMRA_MFI_SD_PCT = 0.8  # AMRA's fat infiltration vs MSMV's Dixon fat fraction of the thigh muscles
AMRA_MISSING = 0.05  # participants without an AMRA result (a failed or rejected analysis)
