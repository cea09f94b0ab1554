"""Pagination that forgives: a bookmark outlives the rows it counted."""


class LastPageMixin:
    """For a ListView: a page past the end shows the last page, and a page that is not a
    number the first, instead of Django's 404 (DESIGN.md, Web)."""

    def paginate_queryset(self, queryset, page_size):
        paginator = self.get_paginator(queryset, page_size)
        page = paginator.get_page(self.request.GET.get(self.page_kwarg))
        return paginator, page, page.object_list, page.has_other_pages()
