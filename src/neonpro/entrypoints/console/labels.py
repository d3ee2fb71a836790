"""Portuguese words for the console: labels of the vocabularies, dates in the clinic's
time zone, yes and no. Nothing here reads the database."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from neonpro.domain import erasure

DEFAULT_ZONE = "America/Sao_Paulo"
DASH = "—"

LABELS: dict[str, str] = {
    # data-subject requests: kinds (LGPD art. 18) and statuses
    "confirmation": "Confirmação de tratamento", "access": "Acesso aos dados",
    "correction": "Correção", "anonymization": "Anonimização", "blocking": "Bloqueio",
    "deletion": "Eliminação", "portability": "Portabilidade",
    "sharing_information": "Informação sobre compartilhamento",
    "consent_revocation": "Revogação do consentimento",
    "open": "Aberta", "in_progress": "Em andamento", "fulfilled": "Atendida",
    "refused": "Recusada",
    # incidents
    "contained": "Contido", "closed": "Encerrado",
    "anpd": "ANPD", "subjects": "Titulares",
    # risk levels
    "low": "Baixo", "medium": "Médio", "high": "Alto", "critical": "Crítico",
    # data categories
    "identification": "Identificação", "contact": "Contato", "address": "Endereço",
    "clinical": "Dados clínicos", "insurance": "Convênio",
    "emergency_contact": "Contato de emergência", "consent": "Consentimento",
    "financial": "Financeiro", "marketing": "Marketing", "images": "Imagens",
    "audit": "Auditoria",
    # consent purposes and states
    "treatment": "Tratamento", "data_processing": "Tratamento de dados",
    "research": "Pesquisa", "data_sharing": "Compartilhamento de dados",
    "telemedicine": "Telemedicina", "image_use": "Uso de imagem",
    "insurance_sharing": "Compartilhamento com convênio",
    "given": "Concedido", "withdrawn": "Revogado", "expired": "Expirado",
    "pending": "Pendente", "granted": "Concedido", "revoked": "Revogado",
    # legal bases and collection channels
    "legal_obligation": "Obrigação legal", "health_protection": "Tutela da saúde",
    "rights_exercise": "Exercício de direitos", "life_protection": "Proteção da vida",
    "fraud_prevention": "Prevenção à fraude", "contract": "Contrato",
    "legitimate_interest": "Legítimo interesse", "written": "Por escrito",
    "digital_signature": "Assinatura digital", "online_form": "Formulário on-line",
    "verbal_recorded": "Verbal gravado",
    # roles
    "admin": "Administração", "dpo": "Encarregado (DPO)", "professional": "Profissional",
    "receptionist": "Recepção", "system": "Sistema", "unknown": "Desconhecido",
    # audit actions
    "VIEW": "Consulta", "CREATE": "Criação", "UPDATE": "Alteração", "DELETE": "Exclusão",
    "EXPORT": "Exportação", "LOGIN": "Entrada", "LOGOUT": "Saída",
    "LOGIN_FAILED": "Entrada recusada", "CONSENT_GRANTED": "Consentimento concedido",
    "CONSENT_REVOKED": "Consentimento revogado", "CONSENT_EXPIRED": "Consentimento expirado",
    "ANONYMIZE": "Anonimização", "BLOCK": "Bloqueio", "UNBLOCK": "Desbloqueio",
    "BACKUP": "Cópia de segurança", "RESTORE": "Restauração", "VERIFY": "Verificação",
    "LEGAL_HOLD_READ": "Leitura sob guarda legal", "PERMISSION_DENIED": "Acesso negado",
    "RETENTION": "Retenção", "KEY_ROTATION": "Troca de chave", "INCIDENT": "Incidente",
    # audit statuses
    "success": "Sucesso", "failure": "Falha", "blocked": "Bloqueado",
    # audit resources
    "patient": "Paciente", "patients": "Paciente", "appointment": "Agendamento",
    "appointments": "Agendamento", "data_subject_requests": "Solicitação de titular",
    "security_incident": "Incidente", "security_incidents": "Incidente",
    "audit_events": "Trilha de auditoria", "consent_records": "Consentimento",
    "staff_user": "Equipe", "staff_users": "Equipe", "clinic_memberships": "Equipe",
    "console": "Console do encarregado", "compliance_report": "Relatório de conformidade",
    "disclosures": "Compartilhamento", "retention_policies": "Política de retenção",
    "professionals": "Profissional", "lgpd": "LGPD",
    "audit_checkpoint": "Ponto de verificação", "erasure_ledger": "Registro de eliminações",
    # retention actions
    "anonymize": "Anonimizar", "block": "Bloquear", "delete": "Eliminar", "keep": "Manter",
    # the erasure engine's legal grounds (domain/erasure.py)
    erasure.HOLD: "Lei 13.787/2018, art. 6º; Res. CFM 1.821/2007 e 1.638/2002 (prontuário: "
                  "guarda de 20 anos)",
    erasure.UNNEEDED: "LGPD, art. 16 e art. 18, IV e VI (sem base legal para manter)",
    erasure.ANONYMIZED: "LGPD, art. 12 e art. 16, IV (anonimizado, para uso exclusivo do "
                        "controlador)",
    erasure.PROOF: "LGPD, art. 7º, VI e art. 16, I (prova do consentimento guardada para "
                   "defesa, sem identificadores)",
    erasure.AUDIT: "LGPD, art. 37 e art. 46 (registro das operações; só referências "
                   "por chave)",
    erasure.BILLING: "CTN, arts. 173 e 174, e RN ANS 305/2012 (faturamento guardado com o "
                     "prontuário)",
}


def label(value: object) -> str:
    """The Portuguese label of a vocabulary value (the value itself when it has none)."""
    if value is None:
        return DASH
    text = str(value)
    return LABELS.get(text, text)


INCIDENT_STATUS = {"open": "Aberto", "contained": "Contido", "closed": "Encerrado"}


def incident_status(value: object) -> str:
    """An incident's status (masculine in Portuguese: o incidente)."""
    return INCIDENT_STATUS.get(str(value), label(value))


def yes_no(value: object) -> str:
    if value is None:
        return DASH
    return "Sim" if value else "Não"


def local(value: datetime | None, zone: str = DEFAULT_ZONE) -> str:
    """``dd/mm/aaaa HH:MM`` in the clinic's time zone."""
    if value is None:
        return DASH
    return value.astimezone(ZoneInfo(zone)).strftime("%d/%m/%Y %H:%M")


def day(value: date | datetime | None, zone: str = DEFAULT_ZONE) -> str:
    if value is None:
        return DASH
    if isinstance(value, datetime):
        value = value.astimezone(ZoneInfo(zone)).date()
    return value.strftime("%d/%m/%Y")


CPF_DIGITS = 11


def partial_cpf(cpf: str | None) -> str:
    """A CPF as lists show it: its middle six digits only (``***.444.777-**``)."""
    if not cpf or len(cpf) != CPF_DIGITS or not cpf.isdigit():
        return DASH
    return f"***.{cpf[3:6]}.{cpf[6:9]}-**"


def number(value: Any) -> str:
    """An integer with the Brazilian thousands separator."""
    return f"{int(value):,}".replace(",", ".")
