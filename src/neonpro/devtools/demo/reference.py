"""The fixed world of the demo: time zone, calendar rules, clinics, services,
specialties, consent terms and the clinical vocabulary patients are drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import Final
from zoneinfo import ZoneInfo

from neonpro.domain.actors import SystemActors
from neonpro.domain.vocabulary import ConsentPurpose, CouncilType

ACTOR: Final = SystemActors.DEMO_SEED
ZONE_NAME: Final = "America/Sao_Paulo"
ZONE: Final = ZoneInfo(ZONE_NAME)
NO_LOGIN: Final = "!demo-no-login"  # not an argon2 hash: nobody can log in with it
GRID: Final = 15  # minutes between candidate start times
SATURDAY: Final = 5
SATURDAY_CLOSE: Final = 12 * 60
CONFIRM_WINDOW_DAYS: Final = 3
PUSH_DAYS: Final = 7  # a visit that finds no slot moves up to this many days later

ALLERGIES: Final = ("dipirona", "penicilina", "látex", "lidocaína", "iodo", "AAS", "níquel")
CONDITIONS: Final = ("hipertensão", "diabetes tipo 2", "hipotireoidismo", "asma", "rosácea")
MEDICATIONS: Final = ("losartana", "metformina", "levotiroxina", "anticoncepcional oral")
RELATIONS: Final = ("mãe", "pai", "cônjuge", "irmã", "irmão", "filha", "filho")
INSURERS: Final = ("Bradesco Saúde", "SulAmérica", "Amil", "Unimed", "Porto Seguro Saúde")
PLANS: Final = ("Básico", "Executivo", "Premium", "Enfermaria", "Apartamento")
EMAIL_DOMAINS: Final = ("example.com", "example.net", "example.org")  # reserved: no real inbox
COLORS: Final = ("#3B82F6", "#10B981", "#F59E0B", "#EF4444", "#8B5CF6", "#EC4899", "#14B8A6")
HOLIDAYS: Final = ((1, 1), (4, 21), (5, 1), (9, 7), (10, 12), (11, 2), (11, 15), (11, 20),
                   (12, 25))  # national fixed-date holidays: the clinics are closed
SHIFTS: Final = (  # work start, work end, break start, break end
    (time(8), time(18), time(12), time(13)),
    (time(9), time(19), time(13), time(14)),
    (time(7, 30), time(16, 30), time(11, 30), time(12, 30)),
)
COMPLAINTS: Final = ("manchas no rosto", "acne", "flacidez", "rugas de expressão",
                     "queda de cabelo", "avaliação de rotina")



@dataclass(frozen=True, slots=True)
class City:
    name: str
    uf: str
    ddds: tuple[str, ...]
    cep_range: tuple[int, int]
    streets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClinicTemplate:
    name: str
    legal_name: str
    slug: str
    city: City
    specialties: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    minutes: int
    price: str
    category: str
    tuss: tuple[str, str] | None = None  # (code, procedure name)


@dataclass(frozen=True, slots=True)
class Specialty:
    label: str
    council: CouncilType
    first: str  # the service of a first visit
    repeat: tuple[str, ...]  # the services of later visits
    interval_days: int  # typical days between visits


SAO_PAULO = City("São Paulo", "SP", ("11", "11", "11", "12", "13", "19"), (1_000_000, 5_999_999), (
    "Rua Augusta", "Avenida Paulista", "Rua Oscar Freire", "Rua Haddock Lobo", "Alameda Santos",
    "Rua da Consolação", "Rua Vergueiro", "Rua Teodoro Sampaio", "Rua Cardeal Arcoverde"))
RIO = City("Rio de Janeiro", "RJ", ("21", "21", "21", "22", "24"), (20_000_000, 23_799_999), (
    "Rua Visconde de Pirajá", "Avenida Atlântica", "Rua Barata Ribeiro", "Rua São Clemente",
    "Rua Voluntários da Pátria", "Avenida das Américas", "Rua Conde de Bonfim"))
BELO_HORIZONTE = City("Belo Horizonte", "MG", ("31", "31", "31", "32", "35", "37"),
                      (30_000_000, 31_999_999), (
    "Avenida Afonso Pena", "Rua da Bahia", "Avenida do Contorno", "Rua Pernambuco",
    "Rua Sergipe", "Avenida Getúlio Vargas", "Rua Professor Morais", "Rua Paraíba"))

CLINICS: Final = (
    ClinicTemplate("Clínica Bella Pele", "Bella Pele Dermatologia e Estética Ltda", "bellapele",
                   SAO_PAULO, ("derma", "biomed", "hof", "fisio")),
    ClinicTemplate("Instituto Carioca de Estética", "Instituto Carioca de Estética e Saúde Ltda",
                   "institutocarioca", RIO, ("derma", "biomed", "nutri")),
    ClinicTemplate("Espaço Vitta Savassi", "Vitta Savassi Clínica de Estética Ltda",
                   "vittasavassi", BELO_HORIZONTE, ("derma", "hof", "fisio")),
)

SERVICES: Final = {s.name: s for s in (
    Service("Consulta dermatológica", 30, "380.00", "consulta",
            ("10101012", "Consulta em consultório (no horário normal ou preestabelecido)")),
    Service("Retorno dermatológico", 20, "0.00", "consulta"),
    Service("Peeling químico", 45, "320.00", "procedimento estético"),
    Service("Toxina botulínica (botox)", 30, "1200.00", "injetáveis"),
    Service("Preenchimento com ácido hialurônico", 45, "1800.00", "injetáveis"),
    Service("Limpeza de pele", 60, "180.00", "estética facial"),
    Service("Microagulhamento", 60, "450.00", "estética facial"),
    Service("Avaliação de harmonização orofacial", 30, "150.00", "consulta"),
    Service("Drenagem linfática", 60, "150.00", "estética corporal"),
    Service("Radiofrequência", 45, "220.00", "estética corporal"),
    Service("Consulta nutricional", 45, "300.00", "consulta"),
    Service("Retorno nutricional", 30, "150.00", "consulta"),
)}

SPECIALTIES: Final = {
    "derma": Specialty("Dermatologia", CouncilType.CRM, "Consulta dermatológica", (
        "Retorno dermatológico", "Peeling químico", "Toxina botulínica (botox)",
        "Preenchimento com ácido hialurônico"), 60),
    "biomed": Specialty("Biomedicina estética", CouncilType.CRBM, "Limpeza de pele", (
        "Limpeza de pele", "Microagulhamento", "Peeling químico"), 35),
    "hof": Specialty("Harmonização orofacial", CouncilType.CRO,
                     "Avaliação de harmonização orofacial", (
        "Toxina botulínica (botox)", "Preenchimento com ácido hialurônico"), 90),
    "fisio": Specialty("Fisioterapia dermatofuncional", CouncilType.CREFITO,
                       "Drenagem linfática", ("Drenagem linfática", "Radiofrequência"), 25),
    "nutri": Specialty("Nutrição", CouncilType.CRN, "Consulta nutricional",
                       ("Retorno nutricional",), 40),
}

TERMS: Final = {
    ConsentPurpose.TREATMENT: (
        "tratamento-v1",
        "Autorizo a clínica a tratar meus dados pessoais e de saúde para a prestação dos "
        "serviços de saúde contratados, nos termos do art. 11, II, f da LGPD.",
    ),
    ConsentPurpose.MARKETING: (
        "marketing-v1",
        "Aceito receber comunicações sobre novidades, promoções e campanhas da clínica por "
        "WhatsApp, SMS ou e-mail. Posso revogar este consentimento a qualquer momento.",
    ),
}
