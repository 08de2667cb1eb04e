"""Models built on the recurrent core. Importing this package registers every checkpointable model
(see :mod:`rnnlab.models.registry`)."""
from rnnlab.models.acoustic import AcousticConfig, AcousticModel
from rnnlab.models.captioner import Captioner, CaptionerConfig
from rnnlab.models.classifier import ClassifierConfig, SequenceClassifier
from rnnlab.models.conv_classifier import ConvClassifierConfig, ConvSequenceClassifier
from rnnlab.models.forecaster import Forecaster, ForecasterConfig
from rnnlab.models.language import (
    LanguageModel,
    LanguageModelConfig,
    WindowLanguageModel,
    WindowLanguageModelConfig,
)
from rnnlab.models.translator import Translator, TranslatorConfig
