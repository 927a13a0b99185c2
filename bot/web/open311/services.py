"""The Open311 services: the complaint categories of PRODUCT.md §2, with the group,
description and keywords a GeoReport client shows."""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.texts import CATEGORY_NAMES


@dataclass(frozen=True)
class Service:
    """An Open311 service: one complaint category."""

    code: str
    description: str
    group: str
    keywords: str

    @property
    def name(self) -> str:
        return CATEGORY_NAMES[self.code]


SERVICES: tuple[Service, ...] = (
    Service(
        "sidewalk",
        "Cửa hàng, quán, hàng rong, mái che, biển quảng cáo lấn chiếm vỉa hè, lòng đường.",
        "Trật tự đô thị",
        "vỉa hè, lòng đường, hàng rong, lấn chiếm",
    ),
    Service(
        "construction",
        "Xây dựng không phép, sai phép, cơi nới thêm tầng, lấn chiếm đất công, "
        "thi công gây hư hại nhà liền kề.",
        "Trật tự đô thị",
        "xây dựng, không phép, sai phép, cơi nới, đất công",
    ),
    Service(
        "waste",
        "Rác không được thu gom, đổ trộm rác thải hoặc phế thải xây dựng.",
        "Môi trường",
        "rác, thu gom, phế thải, đổ trộm",
    ),
    Service(
        "pollution",
        "Ô nhiễm hồ, kênh mương; khói, bụi, mùi hôi; tiếng ồn (karaoke, thi công ban đêm).",
        "Môi trường",
        "ô nhiễm, khói, bụi, mùi, tiếng ồn, karaoke",
    ),
    Service(
        "infrastructure",
        "Ổ gà, đèn đường hỏng, ngập úng, cống thoát nước, mất nắp cống, cây xanh.",
        "Hạ tầng, giao thông",
        "ổ gà, đèn đường, ngập, cống, nắp cống, cây xanh",
    ),
    Service(
        "traffic",
        "Ùn tắc, đèn tín hiệu hỏng, xe tải chạy giờ cấm, đi ngược chiều.",
        "Hạ tầng, giao thông",
        "ùn tắc, đèn tín hiệu, xe tải, ngược chiều",
    ),
    Service(
        "parking",
        "Trông giữ xe thu quá giá quy định, bãi trông giữ xe không phép.",
        "Hạ tầng, giao thông",
        "trông giữ xe, bãi xe, thu quá giá",
    ),
    Service(
        "water",
        "Mất nước, nước bẩn, vỡ đường ống, nước yếu.",
        "Dịch vụ công cộng",
        "mất nước, nước bẩn, vỡ ống, nước yếu",
    ),
    Service(
        "fire_safety",
        "Nguy cơ cháy nổ, thiếu lối thoát hiểm hoặc bình chữa cháy, tích trữ nhiên liệu trong nhà.",
        "Dịch vụ công cộng",
        "cháy nổ, lối thoát hiểm, bình chữa cháy, xăng dầu",
    ),
    Service(
        "misconduct",
        "Cán bộ đòi tiền, gây phiền hà, thái độ không đúng mực, vắng mặt trong giờ làm việc.",
        "Cán bộ, thủ tục hành chính",
        "cán bộ, nhũng nhiễu, phiền hà, thái độ",
    ),
    Service(
        "procedure_delay",
        "Trả kết quả thủ tục hành chính trễ hẹn, yêu cầu bổ sung giấy tờ nhiều lần.",
        "Cán bộ, thủ tục hành chính",
        "thủ tục, trễ hẹn, chậm, bổ sung giấy tờ",
    ),
    Service("other", "Các vấn đề khác.", "Khác", "khác"),
)
SERVICE_BY_CODE: dict[str, Service] = {service.code: service for service in SERVICES}
