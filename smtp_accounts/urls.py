from django.urls import path

from .views import accounts, devinbox, history, oauth, verification

app_name = "smtp_accounts"

urlpatterns = [
    path("", accounts.AccountListView.as_view(), name="list"),
    path("new/", accounts.AccountCreateView.as_view(), name="create"),
    path("<int:pk>/edit/", accounts.AccountUpdateView.as_view(), name="update"),
    path("<int:pk>/delete/", accounts.AccountDeleteView.as_view(), name="delete"),
    path("<int:pk>/test/", verification.TestEmailView.as_view(), name="test"),
    path("<int:pk>/test/confirm/", verification.ConfirmCodeView.as_view(), name="confirm"),
    path("<int:pk>/oauth/", oauth.SignInStartView.as_view(), name="oauth"),
    path("oauth/callback/", oauth.SignInCallbackView.as_view(), name="oauth_callback"),
    path("deleted/", history.DeletedAccountListView.as_view(), name="deleted"),
    path("deleted/<int:pk>/", history.DeletedAccountHistoryView.as_view(), name="deleted_history"),
    path("dev-inbox/", devinbox.DevInboxView.as_view(), name="dev_inbox"),
]
